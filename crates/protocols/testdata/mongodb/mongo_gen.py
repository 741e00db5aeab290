"""Builds a MongoDB exchange: requests with pymongo's own OP_MSG encoder, replies and the legacy OP_QUERY/OP_REPLY
handshake by the wire-protocol spec with pymongo's `bson` (see README.md)."""
import struct, sys
import bson
from bson import Binary, ObjectId, Int64
from bson.codec_options import DEFAULT_CODEC_OPTIONS
from pymongo import message

req, out = bytearray(), bytearray()
def header(length, rid, to, op): return struct.pack('<iiii', length, rid, to, op)
def op_msg_reply(to, doc, rid):
    body = struct.pack('<IB', 0, 0) + bson.encode(doc)
    return header(16 + len(body), rid, to, 2013) + body

# Legacy handshake: OP_QUERY on admin.$cmd, answered by OP_REPLY.
q = bson.encode({'isMaster': 1, 'helloOk': True, 'client': {'driver': {'name': 'PyMongo', 'version': '4.20.1'}, 'os': {'type': 'Linux'}}})
body = struct.pack('<i', 0) + b'admin.$cmd\x00' + struct.pack('<ii', 0, -1) + q
req += header(16 + len(body), 1, 0, 2004) + body
reply_docs = bson.encode({'helloOk': True, 'ismaster': True, 'maxWireVersion': 21, 'ok': 1.0})
body = struct.pack('<iqii', 8, 0, 0, 1) + reply_docs
out += header(16 + len(body), 100, 1, 1) + body

rid = 200
def cmd(command, db, reply, flags=0):
    global rid
    request_id, data, _, _ = message._op_msg(flags, command, db, None, DEFAULT_CODEC_OPTIONS)
    req.extend(data)
    if reply is not None:
        rid += 1
        out.extend(op_msg_reply(request_id, reply, rid))

cmd({'saslStart': 1, 'mechanism': 'SCRAM-SHA-256', 'payload': Binary(b'n,,n=alice,r=rOprNGfwEbeRWgbNEkqO'), 'autoAuthorize': 1}, 'admin',
    {'conversationId': 1, 'done': False, 'payload': Binary(b'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'), 'ok': 1.0})
cmd({'saslContinue': 1, 'conversationId': 1, 'payload': Binary(b'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=')}, 'admin',
    {'conversationId': 1, 'done': True, 'payload': Binary(b'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='), 'ok': 1.0})
cmd({'createUser': 'bob', 'pwd': 'bob-secret', 'roles': [{'role': 'read', 'db': 'test'}]}, 'test', {'ok': 1.0})
cmd({'insert': 'things', 'ordered': True, 'documents': [{'_id': ObjectId('65a1b2c3d4e5f60718293a4b'), 'name': 'lamp', 'qty': 3}, {'_id': ObjectId('65a1b2c3d4e5f60718293a4c'), 'name': 'desk', 'qty': Int64(1), 'tags': ['wood', 'oak'], 'price': 129.5}]}, 'test',
    {'n': 2, 'ok': 1.0})
cmd({'find': 'things', 'filter': {'qty': {'$gt': 1}}, 'limit': 10}, 'test',
    {'cursor': {'firstBatch': [{'_id': ObjectId('65a1b2c3d4e5f60718293a4b'), 'name': 'lamp', 'qty': 3}], 'id': Int64(0), 'ns': 'test.things'}, 'ok': 1.0})
cmd({'find': 'things', 'filter': {'$bad': 1}}, 'test',
    {'ok': 0.0, 'errmsg': 'unknown top level operator: $bad', 'code': 2, 'codeName': 'BadValue'})
# An unacknowledged write (w: 0): moreToCome is set, the server answers nothing.
cmd({'insert': 'things', 'ordered': True, 'writeConcern': {'w': 0}, 'documents': [{'name': 'chair'}]}, 'test', None, flags=2)
cmd({'ping': 1}, 'admin', {'ok': 1.0})
open(sys.argv[1] + '.req', 'wb').write(req)
open(sys.argv[1] + '.resp', 'wb').write(out)
print(len(req), len(out))
