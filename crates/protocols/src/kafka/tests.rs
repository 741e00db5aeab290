use super::*;
use crate::{ConnParser, Side};

#[test]
fn dump() {
    for name in ["kafka_python", "driver_v5"] {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/kafka/");
        let Ok(req) = std::fs::read(format!("{dir}{name}.req")) else { continue };
        let resp = std::fs::read(format!("{dir}{name}.resp")).unwrap();
        let mut c = KafkaConn::new(KafkaConfig::default());
        c.feed(Side::Request, &req, 1);
        c.feed(Side::Response, &resp, 2);
        c.close(3);
        let mut out = Vec::new();
        c.drain_records(&mut out);
        for r in &out { println!("{r:?}\n"); }
        println!("{:?}", c.stats());
    }
}
