//! One case: generated from its seed, run through the codec (with its invariants checked)
//! and through the reference models, and compared: any difference fails the case.

use std::fmt;

use bytes::BytesMut;
use fastrand::Rng;
use http::{Method, Version};

use crate::http1::codec::decode::{Decoded, Decoder, Framing};
use crate::http1::codec::head::{self, HeadError};

use super::ref_body::{self, Body};
use super::ref_head::{self, Class, Field, Head, Request, Response};
use super::stats::{body_outcome, framing_name, head_outcome, Stats};
use super::target::Target;
use super::{gen_body, gen_head};

/// A generated input and how it is fed to the codec.
pub(super) struct Case {
    pub(super) seed: u64,
    pub(super) kind: Kind,
    pub(super) input: Vec<u8>,
    /// The ways the input is cut into reads (cut points, ascending).
    pub(super) splits: Vec<Vec<usize>>,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    RequestHead,
    /// A response head answering a request with this method.
    ResponseHead(&'static str),
    Body(Framing),
}

impl Case {
    /// The case a seed stands for.
    pub(super) fn generate(seed: u64) -> Case {
        let mut rng = Rng::with_seed(seed);
        let (kind, input) = match rng.u8(..100) {
            0..45 => (Kind::RequestHead, gen_head::request(&mut rng)),
            45..60 => (
                Kind::ResponseHead(gen_head::answered_method(&mut rng)),
                gen_head::response(&mut rng),
            ),
            60..92 => (Kind::Body(Framing::Chunked), gen_body::chunked(&mut rng)),
            _ => {
                let framing = if rng.u8(..4) == 0 {
                    Framing::UntilClose
                } else {
                    Framing::Length(rng.u64(0..40))
                };
                let len = rng.usize(0..50);
                (Kind::Body(framing), gen_body::bytes(&mut rng, len))
            }
        };
        let splits = match kind {
            Kind::Body(_) => gen_body::splits(&mut rng, input.len()),
            _ => vec![head_cuts(&mut rng, input.len())],
        };
        Case {
            seed,
            kind,
            input,
            splits,
        }
    }

    /// A case for a fixed input, cut into reads each way `splits` lists (heads: the first).
    #[cfg(test)]
    pub(super) fn pinned(kind: Kind, input: &[u8], splits: Vec<Vec<usize>>) -> Case {
        Case {
            seed: 0,
            kind,
            input: input.to_vec(),
            splits,
        }
    }

    /// The bytes and a reproduction hint, for a failure message.
    pub(super) fn describe(&self) -> String {
        let shown = self.input.len().min(4096);
        format!(
            "case seed {seed:#x} ({kind:?}), replay with SEAWALL_FUZZ_REPLAY={seed:#x}\ninput ({len} bytes): b\"{bytes}\"{more}",
            seed = self.seed,
            kind = self.kind,
            len = self.input.len(),
            bytes = self.input[..shown].escape_ascii(),
            more = if shown < self.input.len() { " …" } else { "" },
        )
    }
}

/// Heads are read whole three times in four, else in up to four reads.
fn head_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    if len < 2 || rng.u8(..4) != 0 {
        return Vec::new();
    }
    let mut cuts: Vec<usize> = (0..rng.usize(1..4)).map(|_| rng.usize(1..len)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Why a case failed: `what` names the kind of failure (the report counts them), `detail`
/// shows it.
pub(super) struct Failure {
    pub(super) what: String,
    pub(super) detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n{}", self.what, self.detail)
    }
}

/// Runs one case; `Err` when the codec broke an invariant or answered otherwise than the
/// reference models.
pub(super) fn check(case: &Case, stats: &mut Stats) -> Result<(), Failure> {
    stats.cases += 1;
    let input = &case.input[..];
    match case.kind {
        Kind::RequestHead | Kind::ResponseHead(_) => {
            let cuts = &case.splits[0];
            stats.head_reads += cuts.len() as u64 + 1;
            let (side, code, want) = match case.kind {
                Kind::ResponseHead(method) => (
                    "response",
                    response_head(input, cuts, method),
                    over_reads(input, cuts, |prefix| ref_head::response(prefix, method)),
                ),
                _ => (
                    "request",
                    request_head(input, cuts),
                    over_reads(input, cuts, ref_head::request),
                ),
            };
            let code = code.map_err(|e| broken(side, cuts, e))?;
            stats.outcome(format!("{side}: {}", head_outcome(&code)));
            agree(side, &code, &want, cuts, head_outcome)
        }
        Kind::Body(framing) => {
            let side = format!("body {}", framing_name(framing));
            let want = ref_body::body(framing, input);
            for (i, cuts) in case.splits.iter().enumerate() {
                stats.body_splits += 1;
                let code = decode_body(framing, input, cuts).map_err(|e| broken(&side, cuts, e))?;
                if i == 0 {
                    stats.outcome(format!("{side}: {}", body_outcome(&code)));
                }
                agree(&side, &code, &want, cuts, body_outcome)?;
            }
            Ok(())
        }
    }
}

/// The codec broke one of its invariants.
fn broken(side: &str, cuts: &[usize], invariant: String) -> Failure {
    Failure {
        what: format!("{side}: {invariant}"),
        detail: format!("the codec broke an invariant (reads cut at {cuts:?})"),
    }
}

/// `Ok` when the codec's answer is the reference's; else both answers, and both outcomes
/// for counting.
fn agree<T: PartialEq + fmt::Debug>(
    side: &str,
    code: &T,
    want: &T,
    cuts: &[usize],
    outcome: impl Fn(&T) -> String,
) -> Result<(), Failure> {
    if code == want {
        return Ok(());
    }
    let (code_says, want_says) = (outcome(code), outcome(want));
    let what = if code_says == want_says {
        format!("{side}: {code_says} from both, in different detail")
    } else {
        format!("{side}: codec {code_says}, reference {want_says}")
    };
    let detail = format!(
        "the codec and the reference differ (reads cut at {cuts:?})\n  codec:     {code:?}\n  reference: {want:?}"
    );
    Err(Failure { what, detail })
}

/// The answer for the first read after which the head is complete or refused.
fn over_reads(input: &[u8], cuts: &[usize], parse: impl Fn(&[u8]) -> Head) -> Head {
    for end in cuts.iter().copied().chain([input.len()]) {
        let head = parse(&input[..end]);
        if head != Head::Partial {
            return head;
        }
    }
    Head::Partial
}

/// Feeds `input` to `parse_request` read by read, as a connection does, checking that it
/// takes nothing until the head is whole and then exactly the head.
pub(super) fn request_head(input: &[u8], cuts: &[usize]) -> Result<Head, String> {
    run_head(input, cuts, |buf| {
        Ok(head::parse_request(buf)?.map(|h| {
            let uri = &h.parts.uri;
            let mut fields: Vec<Field> = h
                .parts
                .headers
                .iter()
                .map(|(n, v)| Field(n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Head::Request(Request {
                head_len: 0,
                method: h.parts.method.as_str().to_owned(),
                target: Target {
                    scheme: uri.scheme_str().map(str::to_ascii_lowercase),
                    authority: uri.authority().map(|a| a.as_str().to_owned()),
                    path: uri.path().to_owned(),
                    query: uri.query().map(str::to_owned),
                },
                http10: h.parts.version == Version::HTTP_10,
                fields,
                framing: h.framing,
                keep_alive: h.keep_alive,
                expects_continue: h.expects_continue,
            })
        }))
    })
}

/// As [`request_head`], for a response answering `method`, with its framing.
pub(super) fn response_head(input: &[u8], cuts: &[usize], method: &str) -> Result<Head, String> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    run_head(input, cuts, |buf| {
        Ok(head::parse_response(buf)?.map(|h| {
            let framing = head::response_framing(&h, &method).map_err(class);
            Head::Response(Response {
                head_len: 0,
                status: h.status.as_u16(),
                fields: h
                    .headers
                    .iter()
                    .map(|(n, v)| Field(n.to_vec(), v.to_vec()))
                    .collect(),
                keep_alive: h.keep_alive,
                framing,
            })
        }))
    })
}

fn run_head(
    input: &[u8],
    cuts: &[usize],
    parse: impl Fn(&mut BytesMut) -> Result<Option<Head>, HeadError>,
) -> Result<Head, String> {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    for end in cuts.iter().copied().chain([input.len()]) {
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        match parse(&mut buf) {
            Ok(None) if buf[..] != input[..fed] => {
                return Err("an incomplete head consumed bytes".into())
            }
            Ok(None) => {}
            Ok(Some(mut head)) => {
                let len = fed - buf.len();
                if buf[..] != input[len..fed] {
                    return Err("what follows the head is not the input's tail".into());
                }
                match &mut head {
                    Head::Request(r) => r.head_len = len,
                    Head::Response(r) => r.head_len = len,
                    _ => {}
                }
                return Ok(head);
            }
            Err(e) => return Ok(Head::Refused(class(e))),
        }
    }
    Ok(Head::Partial)
}

fn class(e: HeadError) -> Class {
    match e {
        HeadError::Malformed(_) => Class::Malformed,
        HeadError::TooLarge => Class::TooLarge,
        HeadError::Version => Class::Version,
        HeadError::ContentLength => Class::ContentLength,
        // Both refuse the transfer coding (400 for a misplaced chunked, 501 for another one).
        HeadError::TransferEncoding | HeadError::UnsupportedCoding => Class::TransferEncoding,
        HeadError::Ambiguous => Class::Ambiguous,
    }
}

/// Decodes `input` cut into reads at `cuts`, then the close, checking that data is never
/// empty and that what follows the body is the input's tail.
pub(super) fn decode_body(framing: Framing, input: &[u8], cuts: &[usize]) -> Result<Body, String> {
    let mut decoder = Decoder::new(framing);
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut ends = cuts.iter().copied().chain([input.len()]);
    let mut fed = 0;
    loop {
        match decoder.decode(&mut buf) {
            Err(e) => return Ok(Body::Failed(e)),
            Ok(Decoded::Data(d)) if d.is_empty() => {
                return Err("the decoder yielded empty data".into())
            }
            Ok(Decoded::Data(d)) => data.extend_from_slice(&d),
            Ok(Decoded::End) => {
                let rest_at = fed - buf.len();
                if buf[..] != input[rest_at..fed] {
                    return Err("what follows the body is not the input's tail".into());
                }
                if !decoder.is_done() || decoder.decode(&mut buf) != Ok(Decoded::End) {
                    return Err("a finished decoder did not stay finished".into());
                }
                return Ok(Body::Complete { data, rest_at });
            }
            Ok(Decoded::NeedMore) => match ends.next() {
                Some(end) => {
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                None => {
                    return Ok(match decoder.at_eof() {
                        Ok(()) => Body::Complete {
                            data,
                            rest_at: fed - buf.len(),
                        },
                        Err(e) => Body::Failed(e),
                    })
                }
            },
        }
    }
}
