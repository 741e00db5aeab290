"""Builds a Kafka exchange with kafka-python's own encoders (see README.md)."""
import sys
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.sasl import SaslHandshakeRequest, SaslHandshakeResponse, SaslAuthenticateRequest, SaslAuthenticateResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

def batch(values):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=1700000000000 + i, key=None, value=v, headers=[])
    return bytes(b.build())

p = KafkaProtocol(client_id='loupe-test')
req, resp = bytearray(), bytearray()
def exchange(r, mk_resp):
    cid = p.send_request(r)
    req.extend(p.send_bytes())
    if mk_resp is not None:
        out = mk_resp()
        out.with_header(correlation_id=cid)
        resp.extend(out.encode(header=True, framed=True))

exchange(ApiVersionsRequest[3](client_software_name='kafka-python', client_software_version='3.0'),
         lambda: ApiVersionsResponse[3](error_code=0, api_keys=[ApiVersionsResponse.ApiVersion(api_key=0, min_version=0, max_version=11), ApiVersionsResponse.ApiVersion(api_key=1, min_version=0, max_version=13)], throttle_time_ms=0))
exchange(SaslHandshakeRequest[1](mechanism='PLAIN'), lambda: SaslHandshakeResponse[1](error_code=0, mechanisms=['PLAIN']))
exchange(SaslAuthenticateRequest[2](auth_bytes=b'\x00alice\x00alice-secret'), lambda: SaslAuthenticateResponse[2](error_code=0, error_message=None, auth_bytes=b'', session_lifetime_ms=0))
exchange(MetadataRequest[9](topics=[MetadataRequest.MetadataRequestTopic(name='events')], allow_auto_topic_creation=True, include_cluster_authorized_operations=False, include_topic_authorized_operations=False),
         lambda: MetadataResponse[9](throttle_time_ms=0, brokers=[MetadataResponse.MetadataResponseBroker(node_id=1, host='127.0.0.1', port=9092, rack=None)], cluster_id='c1', controller_id=1, topics=[MetadataResponse.MetadataResponseTopic(error_code=0, name='events', is_internal=False, partitions=[MetadataResponse.MetadataResponseTopic.MetadataResponsePartition(error_code=0, partition_index=0, leader_id=1, leader_epoch=0, replica_nodes=[1], isr_nodes=[1], offline_replicas=[])])]))
for v, values in ((9, [b'hello', b'world']), (7, [b'third'])):
    exchange(ProduceRequest[v](transactional_id=None, acks=-1, timeout_ms=1500, topic_data=[ProduceRequest.TopicProduceData(name='events', partition_data=[ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=batch(values))])]),
             lambda: ProduceResponse[v](responses=[ProduceResponse.TopicProduceResponse(name='events', partition_responses=[ProduceResponse.TopicProduceResponse.PartitionProduceResponse(index=0, error_code=0, base_offset=41 if v == 9 else 43, log_append_time_ms=-1, log_start_offset=0, record_errors=[], error_message=None)])], throttle_time_ms=0))
# acks=0: the broker sends no response.
exchange(ProduceRequest[8](transactional_id=None, acks=0, timeout_ms=1500, topic_data=[ProduceRequest.TopicProduceData(name='events', partition_data=[ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=batch([b'fire-and-forget']))])]), None)
for v in (12, 4):
    exchange(FetchRequest[v](replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=52428800, isolation_level=0, session_id=0, session_epoch=-1, topics=[FetchRequest.FetchTopic(topic='events', partitions=[FetchRequest.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=41, last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1048576)])], forgotten_topics_data=[], rack_id=''),
             lambda: FetchResponse[v](throttle_time_ms=0, error_code=0, session_id=0, responses=[FetchResponse.FetchableTopicResponse(topic='events', partitions=[FetchResponse.FetchableTopicResponse.PartitionData(partition_index=0, error_code=0, high_watermark=44, last_stable_offset=44, log_start_offset=0, aborted_transactions=[], preferred_read_replica=-1, records=batch([b'hello', b'world']))])]))
# An error: Produce to a partition that does not exist (UNKNOWN_TOPIC_OR_PARTITION = 3).
exchange(ProduceRequest[9](transactional_id=None, acks=1, timeout_ms=1500, topic_data=[ProduceRequest.TopicProduceData(name='missing', partition_data=[ProduceRequest.TopicProduceData.PartitionProduceData(index=5, records=batch([b'x']))])]),
         lambda: ProduceResponse[9](responses=[ProduceResponse.TopicProduceResponse(name='missing', partition_responses=[ProduceResponse.TopicProduceResponse.PartitionProduceResponse(index=5, error_code=3, base_offset=-1, log_append_time_ms=-1, log_start_offset=-1, record_errors=[], error_message=None)])], throttle_time_ms=0))
out = sys.argv[1]
open(out + '.req', 'wb').write(req)
open(out + '.resp', 'wb').write(resp)
print(len(req), len(resp))
