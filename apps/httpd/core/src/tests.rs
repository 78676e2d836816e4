use super::*;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use proptest::prelude::*;

fn parse(b: &[u8]) -> Result<Parsed<Request<'_>>, HttpError> {
    parse_request(b, &Limits::default())
}

fn status_of(b: &[u8]) -> u16 {
    match parse(b) {
        Ok(Parsed::Complete(..)) => 200,
        Ok(Parsed::Incomplete) => 0,
        Err(e) => e.status(),
    }
}

#[test]
fn a_plain_get() {
    let r = b"GET /index.html?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n";
    let Ok(Parsed::Complete(req, n)) = parse(r) else {
        panic!()
    };
    assert_eq!(n, r.len());
    assert_eq!(
        req,
        Request {
            method: Method::Get,
            path: "/index.html",
            version: Version::Http11,
            keep_alive: true,
            body: 0
        }
    );
}

#[test]
fn keep_alive_rules() {
    let ka = |b: &[u8]| match parse(b) {
        Ok(Parsed::Complete(r, _)) => r.keep_alive,
        e => panic!("{e:?}"),
    };
    assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n"
    ));
    assert!(ka(b"GET / HTTP/1.1\nHost: x\n\n"));
}

#[test]
fn statuses_for_bad_requests() {
    for (req, status) in [
        (&b"GARBAGE\r\n\r\n"[..], 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET index.html HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400), // no Host
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n",
            413,
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: \x01\r\n\r\n", 400),
        // A wrong request line is refused before the header block ends.
        (b"NOT HTTP AT ALL\r\n", 400),
    ] {
        assert_eq!(status_of(req), status, "{:?}", String::from_utf8_lossy(req));
    }
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000));
    assert_eq!(status_of(long.as_bytes()), 414);
}

#[test]
fn oversized_headers_are_413() {
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(5000)
    );
    assert_eq!(status_of(big.as_bytes()), 413);
    // Still arriving, but already too long: no need to wait for the end.
    assert_eq!(status_of(&big.as_bytes()[..4500]), 413);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..60 {
        many.push_str(&format!("X{i}: y\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(status_of(many.as_bytes()), 413);
}

#[test]
fn bodies_are_skipped() {
    let r = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    let Ok(Parsed::Complete(a, n)) = parse(r) else {
        panic!()
    };
    assert_eq!(a.body, 5);
    let Ok(Parsed::Complete(b, _)) = parse(&r[n..]) else {
        panic!()
    };
    assert_eq!(b.path, "/b");
    assert_eq!(parse(&r[..n - 1]), Ok(Parsed::Incomplete));
}

#[test]
fn paths_map_to_files() {
    assert_eq!(file_path("/").as_deref(), Some("index.html"));
    assert_eq!(file_path("/a/").as_deref(), Some("a/index.html"));
    assert_eq!(file_path("/a/b.html").as_deref(), Some("a/b.html"));
    assert_eq!(file_path("/../etc/passwd"), None);
    assert_eq!(file_path("/a/../../b"), None);
}

#[test]
fn heads_round_trip_through_the_client_parser() {
    let mut out = [0u8; HEAD_MAX];
    for (status, len, ka) in [
        (200, 2048, true),
        (404, 10, true),
        (400, 0, false),
        (505, 99, false),
    ] {
        let n = write_head(&mut out, status, "text/html", len, ka).unwrap();
        assert_eq!(
            parse_response(&out[..n], 1024),
            Ok(Parsed::Complete(
                Response {
                    status,
                    length: len as u64,
                    keep_alive: ka
                },
                n
            ))
        );
        assert_eq!(parse_response(&out[..n - 1], 1024), Ok(Parsed::Incomplete));
    }
    assert!(write_head(&mut out[..20], 200, "text/html", 1, true).is_none());
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK\r\n\r\n", 1024),
        Err(HttpError::Malformed)
    );
}

/// A well-formed request from parts.
#[derive(Debug, Clone)]
struct Gen {
    head: bool,
    path: String,
    query: Option<String>,
    v11: bool,
    conn: Option<bool>,
    body: Vec<u8>,
    extra: Vec<(String, String)>,
    crlf: bool,
}

impl Gen {
    fn bytes(&self) -> Vec<u8> {
        let nl = if self.crlf { "\r\n" } else { "\n" };
        let mut s = format!(
            "{} {}{} HTTP/1.{}{nl}",
            if self.head { "HEAD" } else { "GET" },
            self.path,
            self.query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default(),
            u8::from(self.v11)
        );
        if self.v11 {
            s.push_str(&format!("Host: serac{nl}"));
        }
        for (k, v) in &self.extra {
            s.push_str(&format!("{k}: {v}{nl}"));
        }
        if let Some(c) = self.conn {
            s.push_str(&format!(
                "Connection: {}{nl}",
                if c { "keep-alive" } else { "close" }
            ));
        }
        if !self.body.is_empty() {
            s.push_str(&format!("Content-Length: {}{nl}", self.body.len()));
        }
        s.push_str(nl);
        let mut b = s.into_bytes();
        b.extend_from_slice(&self.body);
        b
    }

    fn check(&self, r: &Request<'_>) -> Result<(), TestCaseError> {
        prop_assert_eq!(r.method, if self.head { Method::Head } else { Method::Get });
        prop_assert_eq!(r.path, self.path.as_str());
        prop_assert_eq!(
            r.version,
            if self.v11 {
                Version::Http11
            } else {
                Version::Http10
            }
        );
        prop_assert_eq!(r.keep_alive, self.conn.unwrap_or(self.v11));
        prop_assert_eq!(r.body, self.body.len() as u64);
        Ok(())
    }
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        any::<bool>(),
        "(/[a-zA-Z0-9._~-]{0,12}){1,4}",
        proptest::option::of("[a-z0-9=&]{0,10}"),
        any::<bool>(),
        proptest::option::of(any::<bool>()),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,30}"), 0..5),
        any::<bool>(),
    )
        .prop_map(|(head, path, query, v11, conn, body, extra, crlf)| Gen {
            head,
            path,
            query,
            v11,
            conn,
            body,
            extra: extra
                .into_iter()
                .map(|(k, v)| (k, String::from(v.trim())))
                .collect(),
            crlf,
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(Parsed::Complete(_, n)) = parse(&b) {
            prop_assert!(n <= b.len());
        }
        let _ = parse_response(&b, 512);
        let _ = core::str::from_utf8(&b).map(file_path);
    }

    // Bytes that start like a request and go wrong anywhere.
    #[test]
    fn mutated_requests_never_panic(g in gen(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut b = g.bytes();
        let i = at.index(b.len());
        b[i] = byte;
        if let Ok(Parsed::Complete(_, n)) = parse(&b) {
            prop_assert!(n <= b.len());
        }
    }

    #[test]
    fn well_formed_requests_parse(g in gen()) {
        let b = g.bytes();
        match parse(&b) {
            Ok(Parsed::Complete(r, n)) => {
                prop_assert_eq!(n, b.len());
                g.check(&r)?;
            }
            other => prop_assert!(false, "{:?} for {:?}", other, String::from_utf8_lossy(&b)),
        }
        // Every strict prefix is only incomplete.
        for k in 0..b.len() {
            prop_assert_eq!(parse(&b[..k]), Ok(Parsed::Incomplete), "prefix {}", k);
        }
    }

    // Pipelined requests parse one after the other, whole.
    #[test]
    fn pipelined_requests_parse_in_order(gs in proptest::collection::vec(gen(), 1..6)) {
        let mut all = Vec::new();
        for g in &gs {
            all.extend(g.bytes());
        }
        let mut at = 0;
        for g in &gs {
            match parse(&all[at..]) {
                Ok(Parsed::Complete(r, n)) => {
                    g.check(&r)?;
                    at += n;
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
        prop_assert_eq!(at, all.len());
    }
}
