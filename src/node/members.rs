//! Cluster membership as the data dir records it: the `members` tree (etcd's layout: key = the
//! member id in hex, value = etcd's member JSON), the cluster id in the `cluster` tree, and this
//! member's own id in the local tree.
//!
//! Owns: writing the bootstrap members on first start (every member named by
//! `--initial-cluster`, with the ids etcd derives, so every member writes the same) and reading
//! the membership back on restart, so the member and cluster ids never change once chosen; the
//! encoding of members. Never: changes membership after the bootstrap except as the log says
//! (conf changes are applied elsewhere), never reads the clock.

use super::{MemberInfo, NodeConfig, NodeError};
use crate::raft::ids;
use keelson_storage::mvcc::Store;
use keelson_storage::schema;

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

/// The members a new cluster starts with: every `--initial-cluster` entry (or this member alone
/// when there is none) with etcd's ids, sorted by id, and this member's id. Client URLs are not
/// known for the others yet; every member learns them from the log as each publishes its own
/// (so every member's tree says the same).
pub fn bootstrap_members(config: &NodeConfig) -> (u64, Vec<MemberInfo>) {
    let own_id = ids::member_id(&config.peer_urls, &config.initial_cluster_token);
    let mut members: Vec<MemberInfo> = if config.initial_cluster.is_empty() {
        vec![MemberInfo {
            id: own_id,
            name: config.name.clone(),
            peer_urls: config.peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner: false,
        }]
    } else {
        config
            .initial_cluster
            .iter()
            .map(|(name, urls)| MemberInfo {
                id: ids::member_id(urls, &config.initial_cluster_token),
                name: name.clone(),
                peer_urls: urls.clone(),
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect()
    };
    members.sort_by_key(|m| m.id);
    (own_id, members)
}

/// Reads the membership, writing the bootstrap members (durably) if the data dir has none.
pub fn load_or_bootstrap(store: &Store, config: &NodeConfig) -> Result<Membership, NodeError> {
    if let Some(found) = load(store, config)? {
        return Ok(found);
    }
    let (member_id, members) = bootstrap_members(config);
    if !members.iter().any(|m| m.id == member_id) {
        return Err(NodeError::Storage(format!(
            "membership: this member's peer URLs {:?} are not those of any --initial-cluster entry",
            config.peer_urls
        )));
    }
    let cluster_id = ids::cluster_id(&members.iter().map(|m| m.id).collect::<Vec<_>>());
    let mut write = store.begin_write().map_err(storage_error)?;
    let txn = write.txn();
    for member in &members {
        txn.put(
            schema::TREE_MEMBERS,
            member_key(member.id).as_bytes(),
            encode_member(member).as_bytes(),
        )
        .map_err(storage_error)?;
    }
    txn.put(
        schema::TREE_CLUSTER,
        schema::CLUSTER_ID_KEY,
        &cluster_id.to_be_bytes(),
    )
    .map_err(storage_error)?;
    txn.put(
        schema::TREE_LOCAL,
        schema::LOCAL_MEMBER_ID_KEY,
        &member_id.to_be_bytes(),
    )
    .map_err(storage_error)?;
    write.commit_durable().map_err(storage_error)?;
    Ok(Membership {
        member_id,
        cluster_id,
        members,
    })
}

/// The members recorded in `txn`'s `members` tree, by id.
pub fn read_members(txn: &keelson_storage::btree::ReadTxn) -> Result<Vec<MemberInfo>, NodeError> {
    let mut members = Vec::new();
    for item in txn.range(schema::TREE_MEMBERS, ..).map_err(storage_error)? {
        let (_, value) = item.map_err(storage_error)?;
        let text = std::str::from_utf8(value).map_err(storage_error)?;
        members.push(decode_member(text).map_err(storage_error)?);
    }
    members.sort_by_key(|m| m.id);
    Ok(members)
}

fn read_u64(
    txn: &keelson_storage::btree::ReadTxn,
    tree: &[u8],
    key: &[u8],
) -> Result<Option<u64>, NodeError> {
    let Some(bytes) = txn.get(tree, key).map_err(storage_error)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| storage_error(format!("{} is not 8 bytes", String::from_utf8_lossy(key))))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

fn load(store: &Store, config: &NodeConfig) -> Result<Option<Membership>, NodeError> {
    let view = store.view();
    let txn = view.txn();
    let Some(cluster_id) = read_u64(txn, schema::TREE_CLUSTER, schema::CLUSTER_ID_KEY)? else {
        return Ok(None);
    };
    let members = read_members(txn)?;
    let member_id = match read_u64(txn, schema::TREE_LOCAL, schema::LOCAL_MEMBER_ID_KEY)? {
        Some(id) => id,
        None => {
            // A data dir from before the local tree held a single member: the one with our
            // name, or the only one. Record it so later starts need not guess.
            let me = members
                .iter()
                .find(|m| m.name == config.name)
                .or(if members.len() == 1 {
                    members.first()
                } else {
                    None
                })
                .ok_or_else(|| storage_error(format!("no member named {:?}", config.name)))?
                .id;
            drop(view);
            let mut write = store.begin_write().map_err(storage_error)?;
            write
                .txn()
                .put(
                    schema::TREE_LOCAL,
                    schema::LOCAL_MEMBER_ID_KEY,
                    &me.to_be_bytes(),
                )
                .map_err(storage_error)?;
            write.commit_durable().map_err(storage_error)?;
            me
        }
    };
    Ok(Some(Membership {
        member_id,
        cluster_id,
        members,
    }))
}

/// Applies a member's published attributes (etcd's `UpdateAttributes`): its name and client
/// URLs replace the recorded ones. A member no longer in the tree (removed meanwhile) is left
/// alone. Returns whether the tree changed.
pub fn apply_attributes(
    write: &mut keelson_storage::mvcc::StoreWrite<'_>,
    attributes: &keelson_proto::etcdserverpb::Member,
) -> Result<bool, String> {
    let key = member_key(attributes.id);
    let Some(current) = write
        .txn()
        .get(schema::TREE_MEMBERS, key.as_bytes())
        .map_err(|e| e.to_string())?
        .map(<[u8]>::to_vec)
    else {
        return Ok(false);
    };
    let mut member = decode_member(std::str::from_utf8(&current).map_err(|e| e.to_string())?)?;
    if member.name == attributes.name && member.client_urls == attributes.client_ur_ls {
        return Ok(false);
    }
    member.name = attributes.name.clone();
    member.client_urls = attributes.client_ur_ls.clone();
    write
        .txn()
        .put(
            schema::TREE_MEMBERS,
            key.as_bytes(),
            encode_member(&member).as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    Ok(true)
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
            "clientURLs" => m.client_urls = p.strings_or_null()?,
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

    /// A string array, or `null` (Go's encoding of a nil slice: a member that has not published
    /// its client URLs yet).
    fn strings_or_null(&mut self) -> Result<Vec<String>, String> {
        self.skip_ws();
        if self.s[self.at..].starts_with(b"null") {
            self.at += 4;
            return Ok(Vec::new());
        }
        self.strings()
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
