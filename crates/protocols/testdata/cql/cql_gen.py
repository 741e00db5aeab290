"""Builds CQL exchanges: requests with cassandra-driver's own encoder, responses by the v4/v5 spec (see README.md)."""
import io, struct, sys
from cassandra.protocol import (ProtocolHandler, OptionsMessage, StartupMessage, AuthResponseMessage, RegisterMessage,
                                QueryMessage, PrepareMessage, ExecuteMessage, BatchMessage)
from cassandra.segment import SegmentCodec
from cassandra import ConsistencyLevel
from cassandra.query import BatchType

def enc(msg, stream, v):
    return ProtocolHandler.encode_message(msg, stream, v, None, False)

def s(x): x = x.encode(); return struct.pack('>H', len(x)) + x
def ls(x): x = x.encode(); return struct.pack('>i', len(x)) + x
def b(x): return struct.pack('>i', -1) if x is None else struct.pack('>i', len(x)) + x
def sb(x): return struct.pack('>H', len(x)) + x
def resp(v, stream, opcode, body, flags=0):
    return struct.pack('>BBhBi', 0x80 | v, flags, stream, opcode, len(body)) + body

def rows(v, ks, table, cols, data):
    body = struct.pack('>iii', 2, 0x0001, len(cols)) + s(ks) + s(table)
    for name, typ in cols:
        body += s(name) + struct.pack('>H', typ)
    body += struct.pack('>i', len(data))
    for row in data:
        body += b''.join(b(c) for c in row)
    return body

def v4():
    v = 4
    req, out = bytearray(), bytearray()
    req += enc(OptionsMessage(), 0, v)
    out += resp(v, 0, 0x06, struct.pack('>H', 2) + s('CQL_VERSION') + struct.pack('>H', 1) + s('3.4.5') + s('COMPRESSION') + struct.pack('>H', 2) + s('snappy') + s('lz4'))
    req += enc(StartupMessage(cqlversion='3.0.0', options={}), 1, v)
    out += resp(v, 1, 0x03, s('org.apache.cassandra.auth.PasswordAuthenticator'))
    req += enc(AuthResponseMessage(b'\x00cassandra\x00cassandra-secret'), 2, v)
    out += resp(v, 2, 0x10, b(None))
    req += enc(RegisterMessage(['TOPOLOGY_CHANGE', 'STATUS_CHANGE', 'SCHEMA_CHANGE']), 3, v)
    out += resp(v, 3, 0x02, b'')
    req += enc(QueryMessage('SELECT release_version FROM system.local', ConsistencyLevel.ONE), 4, v)
    out += resp(v, 4, 0x08, rows(v, 'system', 'local', [('release_version', 0x000D)], [[b'4.1.3']]))
    req += enc(QueryMessage('USE ks', ConsistencyLevel.ONE), 5, v)
    out += resp(v, 5, 0x08, struct.pack('>i', 3) + s('ks'))
    req += enc(PrepareMessage('INSERT INTO ks.t (k, v) VALUES (?, ?)'), 6, v)
    qid = bytes.fromhex('0123456789abcdef0123456789abcdef')
    # Prepared: id, metadata (flags global spec, 2 columns, 1 pk index), result metadata (no metadata).
    prepared = struct.pack('>i', 4) + sb(qid) + struct.pack('>iii', 1, 2, 1) + struct.pack('>H', 0) + s('ks') + s('t') + s('k') + struct.pack('>H', 9) + s('v') + struct.pack('>H', 0x0D) + struct.pack('>ii', 4, 0)
    out += resp(v, 6, 0x08, prepared)
    req += enc(ExecuteMessage(qid, [struct.pack('>i', 1), b'one'], ConsistencyLevel.QUORUM), 7, v)
    out += resp(v, 7, 0x08, struct.pack('>i', 1))
    req += enc(QueryMessage('SELEC 1', ConsistencyLevel.ONE), 8, v)
    out += resp(v, 8, 0x00, struct.pack('>i', 0x2000) + s("line 1:0 no viable alternative at input 'SELEC'"))
    req += enc(BatchMessage(BatchType.LOGGED, [(False, 'INSERT INTO ks.t (k, v) VALUES (2, \'two\')', []), (True, qid, [struct.pack('>i', 3), b'three'])], ConsistencyLevel.ONE), 9, v)
    out += resp(v, 9, 0x08, struct.pack('>i', 1))
    # Two pipelined queries answered out of order, and a server push (stream -1) between them.
    req += enc(QueryMessage('SELECT k, v FROM ks.t', ConsistencyLevel.ONE), 10, v)
    req += enc(QueryMessage('SELECT now() FROM system.local', ConsistencyLevel.ONE), 11, v)
    out += resp(v, 11, 0x08, rows(v, 'system', 'local', [('system.now()', 0x000F)], [[bytes(16)]]))
    out += resp(v, -1, 0x0C, s('SCHEMA_CHANGE') + s('CREATED') + s('TABLE') + s('ks') + s('t2'))
    out += resp(v, 10, 0x08, rows(v, 'ks', 't', [('k', 0x0009), ('v', 0x000D)], [[struct.pack('>i', 1), b'one'], [struct.pack('>i', 2), b'two'], [struct.pack('>i', 3), b'three']]))
    return req, out

def v5():
    v = 5
    codec = SegmentCodec()
    def framed(msg):
        buf = io.BytesIO(); codec.encode(buf, msg); return buf.getvalue()
    req, out = bytearray(), bytearray()
    req += enc(OptionsMessage(), 0, v)
    out += resp(v, 0, 0x06, struct.pack('>H', 1) + s('PROTOCOL_VERSIONS') + struct.pack('>H', 1) + s('5/v5'))
    req += enc(StartupMessage(cqlversion='3.0.0', options={}), 1, v)
    out += resp(v, 1, 0x02, b'')
    req += framed(enc(QueryMessage('SELECT release_version FROM system.local', ConsistencyLevel.ONE), 2, v))
    out += framed(resp(v, 2, 0x08, rows(v, 'system', 'local', [('release_version', 0x000D)], [[b'5.0.2']])))
    # Two messages in one segment.
    req += framed(enc(QueryMessage('USE ks', ConsistencyLevel.ONE), 3, v) + enc(QueryMessage('SELEC 1', ConsistencyLevel.ONE), 4, v))
    out += framed(resp(v, 3, 0x08, struct.pack('>i', 3) + s('ks')) + resp(v, 4, 0x00, struct.pack('>i', 0x2000) + s('syntax error')))
    return req, out

for name, (req, out) in (('driver_v4', v4()), ('driver_v5', v5())):
    open(f'{sys.argv[1]}/{name}.req', 'wb').write(req)
    open(f'{sys.argv[1]}/{name}.resp', 'wb').write(out)
    print(name, len(req), len(out))
