//! Cluster membership as the data dir records it: the `members` tree (etcd's layout: key = the
//! member id in hex, value = etcd's member JSON) and the cluster id in the `cluster` tree.
//!
//! Owns: writing the bootstrap member on first start and reading members back on restart, so
//! the member and cluster ids never change once chosen. Never: changes membership after the
//! bootstrap (conf changes belong to the cluster work), never reads the clock.

use super::{MemberInfo, NodeConfig, NodeError};
use crate::raft::ids;
use keelson_storage::mvcc::Store;
use keelson_storage::schema;

/// Key of the cluster id in the `cluster` tree (named in the schema module).
pub const CLUSTER_ID_KEY: &[u8] = schema::KEY_CLUSTER_ID;

/// The membership read back (or created) at start.
#[derive(Clone, Debug)]
pub struct Membership {
    pub member_id: u64,
    pub cluster_id: u64,
    pub members: Vec<MemberInfo>,
}

fn storage_error(e: impl std::fmt::Display) -> NodeError {
    NodeError::Storage(format!("membership: {e}"))
}

/// Reads the membership, writing the bootstrap member (durably) if the data dir has none.
pub fn load_or_bootstrap(store: &Store, config: &NodeConfig) -> Result<Membership, NodeError> {
    if let Some(found) = load(store, config)? {
        return Ok(found);
    }
    let member_id = ids::member_id(&config.peer_urls, &config.initial_cluster_token);
    let cluster_id = ids::cluster_id(&[member_id]);
    let me = MemberInfo {
        id: member_id,
        name: config.name.clone(),
        peer_urls: config.peer_urls.clone(),
        client_urls: config.client_urls.clone(),
        is_learner: false,
    };
    let mut write = store.begin_write().map_err(storage_error)?;
    let txn = write.txn();
    txn.put(
        schema::TREE_MEMBERS,
        member_key(member_id).as_bytes(),
        encode_member(&me).as_bytes(),
    )
    .map_err(storage_error)?;
    txn.put(
        schema::TREE_CLUSTER,
        CLUSTER_ID_KEY,
        &cluster_id.to_be_bytes(),
    )
    .map_err(storage_error)?;
    write.commit_durable().map_err(storage_error)?;
    Ok(Membership {
        member_id,
        cluster_id,
        members: vec![me],
    })
}

fn load(store: &Store, config: &NodeConfig) -> Result<Option<Membership>, NodeError> {
    let view = store.view();
    let txn = view.txn();
    let Some(bytes) = txn
        .get(schema::TREE_CLUSTER, CLUSTER_ID_KEY)
        .map_err(storage_error)?
    else {
        return Ok(None);
    };
    let cluster_id = u64::from_be_bytes(
        bytes
            .try_into()
            .map_err(|_| storage_error("cluster id is not 8 bytes"))?,
    );
    let mut members = Vec::new();
    for item in txn.range(schema::TREE_MEMBERS, ..).map_err(storage_error)? {
        let (_, value) = item.map_err(storage_error)?;
        let text = std::str::from_utf8(value).map_err(storage_error)?;
        members.push(decode_member(text).map_err(storage_error)?);
    }
    // This member is the one with our name, or the only one.
    let me = members
        .iter()
        .find(|m| m.name == config.name)
        .or(if members.len() == 1 {
            members.first()
        } else {
            None
        })
        .ok_or_else(|| storage_error(format!("no member named {:?}", config.name)))?;
    Ok(Some(Membership {
        member_id: me.id,
        cluster_id,
        members,
    }))
}

/// etcd's `backendMemberKey`: the id as lower-case hex.
pub fn member_key(id: u64) -> String {
    format!("{id:x}")
}

/// etcd's member JSON (`isLearner` only when true, as Go's `omitempty`).
pub fn encode_member(m: &MemberInfo) -> String {
    let list = |urls: &[String]| {
        let quoted: Vec<String> = urls.iter().map(|u| json_string(u)).collect();
        format!("[{}]", quoted.join(","))
    };
    let learner = if m.is_learner {
        ",\"isLearner\":true"
    } else {
        ""
    };
    format!(
        "{{\"id\":{},\"peerURLs\":{}{learner},\"name\":{},\"clientURLs\":{}}}",
        m.id,
        list(&m.peer_urls),
        json_string(&m.name),
        list(&m.client_urls)
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads back what [`encode_member`] writes (a flat object of numbers, booleans, strings and
/// string arrays).
pub fn decode_member(text: &str) -> Result<MemberInfo, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    let mut m = MemberInfo::default();
    p.expect(b'{')?;
    loop {
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "id" => m.id = p.number()?,
            "name" => m.name = p.string()?,
            "peerURLs" => m.peer_urls = p.strings()?,
            "clientURLs" => m.client_urls = p.strings()?,
            "isLearner" => m.is_learner = p.boolean()?,
            other => return Err(format!("unknown member field {other:?}")),
        }
        if p.eat(b'}') {
            return Ok(m);
        }
        p.expect(b',')?;
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", c as char, self.at))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.at).ok_or("unterminated string")?;
            self.at += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = *self.s.get(self.at).ok_or("unterminated escape")?;
                    self.at += 1;
                    match e {
                        b'u' => {
                            let hex = self.s.get(self.at..self.at + 4).ok_or("short \\u")?;
                            let code = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                16,
                            )
                            .map_err(|e| e.to_string())?;
                            self.at += 4;
                            let ch = char::from_u32(code).ok_or("bad \\u escape")?;
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn strings(&mut self) -> Result<Vec<String>, String> {
        self.expect(b'[')?;
        let mut out = Vec::new();
        if self.eat(b']') {
            return Ok(out);
        }
        loop {
            out.push(self.string()?);
            if self.eat(b']') {
                return Ok(out);
            }
            self.expect(b',')?;
        }
    }

    fn number(&mut self) -> Result<u64, String> {
        self.skip_ws();
        let start = self.at;
        while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at])
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|e| format!("bad number at byte {start}: {e}"))
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_ws();
        for (word, value) in [(&b"true"[..], true), (&b"false"[..], false)] {
            if self.s[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(value);
            }
        }
        Err(format!("expected a boolean at byte {}", self.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_json_is_etcds_and_round_trips() {
        let m = MemberInfo {
            id: 10276657743932975437,
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()],
            client_urls: vec!["http://localhost:2379".into()],
            is_learner: false,
        };
        let json = encode_member(&m);
        assert_eq!(
            json,
            r#"{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default","clientURLs":["http://localhost:2379"]}"#
        );
        assert_eq!(decode_member(&json).unwrap(), m);
        assert_eq!(member_key(m.id), "8e9e05c52164694d");
        let learner = MemberInfo {
            is_learner: true,
            name: "a\"b".into(),
            client_urls: vec![],
            ..m
        };
        assert_eq!(decode_member(&encode_member(&learner)).unwrap(), learner);
    }
}
