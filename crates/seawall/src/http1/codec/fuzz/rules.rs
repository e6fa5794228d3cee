//! What the reference models hold the codec to: RFC 9112 plus the planned wire fixes
//! (`Rules::INTENDED`), and the named ways today's codec is known to differ from them
//! (`Known`), which `Rules::CURRENT` switches on to model today's codec exactly.

/// A known difference between today's codec and the intended rules. Each one, switched on in
/// [`Rules`], makes the reference models behave as today's codec does in that respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Known {
    /// `transfer-encoding` judged by the last item of the last field only (empty list items
    /// not ignored, other codings before `chunked` not refused).
    TeLastItemOnly,
    /// `Transfer_Encoding`, `Content_Length`, `Keep_Alive`, `Proxy_*` kept as ordinary fields.
    UnderscoreNamesKept,
    /// An HTTP/1.0 response with `transfer-encoding` may keep its connection.
    Http10TeResponseReused,
    /// `content-length` read after the fields a `connection` field names were removed.
    ConnectionHidesContentLength,
    /// `expect` read after the fields a `connection` field names were removed.
    ConnectionHidesExpect,
    /// Only the first `expect` field, compared whole, can ask for `100-continue`.
    ExpectListIgnored,
    /// An HTTP/1.1 request without `host`, or with several, is accepted.
    HostUnchecked,
    /// A request target outside RFC 9112 §3.2's forms is accepted when `http::Uri` takes it.
    LenientTargets,
    /// A chunk or trailer line longer than the limit passes when its LF arrives in the same read.
    LongLinesInOneRead,
    /// Any ASCII whitespace (CR, FF too) may follow a chunk size, `;` or not.
    ChunkSizeWhitespace,
    /// Anything after the first `;` of a chunk-size line is accepted as extensions.
    ChunkExtUnchecked,
    /// Trailer lines are not checked to be fields.
    TrailersUnchecked,
}

impl Known {
    pub(super) const ALL: [Known; 12] = [
        Known::TeLastItemOnly,
        Known::UnderscoreNamesKept,
        Known::Http10TeResponseReused,
        Known::ConnectionHidesContentLength,
        Known::ConnectionHidesExpect,
        Known::ExpectListIgnored,
        Known::HostUnchecked,
        Known::LenientTargets,
        Known::LongLinesInOneRead,
        Known::ChunkSizeWhitespace,
        Known::ChunkExtUnchecked,
        Known::TrailersUnchecked,
    ];

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Which [`Known`] differences the reference models reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rules(u16);

impl Rules {
    /// RFC 9112 and the planned fixes: what the codec should do.
    pub(super) const INTENDED: Rules = Rules(0);
    /// Every known difference: what today's codec does.
    pub(super) const CURRENT: Rules = Rules((1 << Known::ALL.len()) - 1);

    pub(super) fn has(self, known: Known) -> bool {
        self.0 & known.bit() != 0
    }

    pub(super) fn without(self, known: Known) -> Rules {
        Rules(self.0 & !known.bit())
    }

    pub(super) fn with(self, known: Known) -> Rules {
        Rules(self.0 | known.bit())
    }
}

/// A mismatch between the codec and the intended rules, as reported: a [`Known`] difference
/// seen from the side it shows on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Finding {
    // Planned fixes (issue 13).
    RequestTeNotPlainChunkedAccepted,
    UnderscoreFramingNamesKept,
    Http10TeResponseReused,
    // New findings.
    RequestTeEmptyItemRefused,
    ResponseTeCodingPassedOn,
    ResponseTeEmptyItemMisread,
    ConnectionHidesContentLength,
    ConnectionHidesExpect,
    ExpectListIgnored,
    HostUnchecked,
    LenientTargets,
    LongLinesInOneRead,
    ChunkSizeWhitespace,
    ChunkExtUnchecked,
    TrailersUnchecked,
}

impl Finding {
    /// One of the wire fixes already planned for issue 13.
    pub(super) fn planned(self) -> bool {
        matches!(
            self,
            Finding::RequestTeNotPlainChunkedAccepted
                | Finding::UnderscoreFramingNamesKept
                | Finding::Http10TeResponseReused
        )
    }

    /// What the intended rules say, with the RFC section.
    pub(super) fn rule(self) -> &'static str {
        match self {
            Finding::RequestTeNotPlainChunkedAccepted => {
                "a request's transfer-encoding other than plain `chunked` is refused (501)"
            }
            Finding::UnderscoreFramingNamesKept => {
                "fields named like framing/hop-by-hop fields with `_` for `-` are dropped"
            }
            Finding::Http10TeResponseReused => {
                "an HTTP/1.0 response with transfer-encoding closes its connection (RFC 9112 §6.1)"
            }
            Finding::RequestTeEmptyItemRefused => {
                "empty list items are ignored: `chunked,` is plain chunked (RFC 9110 §5.6.1)"
            }
            Finding::ResponseTeCodingPassedOn => {
                "a response coded `gzip, chunked` cannot be passed on as identity (RFC 9112 §6.1)"
            }
            Finding::ResponseTeEmptyItemMisread => {
                "a response's `chunked,` is chunked, not read until close (RFC 9110 §5.6.1)"
            }
            Finding::ConnectionHidesContentLength => {
                "framing comes from the received content-length, whatever connection names (RFC 9112 §6.3)"
            }
            Finding::ConnectionHidesExpect => {
                "a received `expect: 100-continue` is honoured even if connection names it (RFC 9110 §10.1.1)"
            }
            Finding::ExpectListIgnored => {
                "expect is a list: any `100-continue` member counts (RFC 9110 §10.1.1)"
            }
            Finding::HostUnchecked => {
                "an HTTP/1.1 request without exactly one host field gets 400 (RFC 9112 §3.2)"
            }
            Finding::LenientTargets => {
                "a request target outside origin/absolute/authority(CONNECT)/asterisk(OPTIONS) form gets 400 (RFC 9112 §3.2)"
            }
            Finding::LongLinesInOneRead => {
                "the chunk line limit holds however the line was split across reads"
            }
            Finding::ChunkSizeWhitespace => {
                "only `BWS ;` may follow a chunk size (RFC 9112 §7.1, §7.1.1)"
            }
            Finding::ChunkExtUnchecked => {
                "chunk extensions are `;name[=token|quoted-string]` (RFC 9112 §7.1.1)"
            }
            Finding::TrailersUnchecked => {
                "trailer lines are field lines (RFC 9112 §7.1.2)"
            }
        }
    }
}
