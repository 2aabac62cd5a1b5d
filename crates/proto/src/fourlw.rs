//! Four-letter words (`ruok`, `srvr`, `mntr`…): admin commands that arrive
//! as 4 raw bytes with no length prefix.
//!
//! They are recognised only as the first 4 bytes of a connection that has
//! not sent a ConnectRequest; the server checks those bytes with
//! [`FourLetterWord::from_bytes`] before handing the stream to the frame
//! codec. Anything not recognised is taken as a frame length.

/// A known four-letter word, or the telnet close sequence that shares its
/// slot (see `FourLetterCommands` in ZooKeeper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FourLetterWord {
    Conf,
    Cons,
    Crst,
    Dirs,
    Dump,
    Envi,
    Gtmk,
    Ruok,
    Stmk,
    Srst,
    Srvr,
    Stat,
    Wchc,
    Wchp,
    Wchs,
    Mntr,
    Isro,
    Hash,
    /// Telnet's "interrupt process" bytes (`FF F4 FF FD`): ZooKeeper closes
    /// the connection silently. Not subject to the whitelist.
    TelnetClose,
}

impl FourLetterWord {
    /// Every variant, in declaration order.
    pub const ALL: [FourLetterWord; 19] = [
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Dirs,
        FourLetterWord::Dump,
        FourLetterWord::Envi,
        FourLetterWord::Gtmk,
        FourLetterWord::Ruok,
        FourLetterWord::Stmk,
        FourLetterWord::Srst,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Wchs,
        FourLetterWord::Mntr,
        FourLetterWord::Isro,
        FourLetterWord::Hash,
        FourLetterWord::TelnetClose,
    ];

    /// The bytes that announce this word.
    pub fn bytes(self) -> [u8; 4] {
        match self {
            FourLetterWord::TelnetClose => [0xFF, 0xF4, 0xFF, 0xFD],
            word => {
                let mut out = [0u8; 4];
                out.copy_from_slice(word.as_str().as_bytes());
                out
            }
        }
    }

    /// Recognises the first 4 bytes of a fresh connection. Matching is exact
    /// (lower case), like ZooKeeper's comparison of the bytes as an i32.
    pub fn from_bytes(bytes: &[u8; 4]) -> Option<FourLetterWord> {
        FourLetterWord::ALL
            .into_iter()
            .find(|word| word.bytes() == *bytes)
    }

    /// Like [`FourLetterWord::from_bytes`] on the start of `buf`; `None` when
    /// fewer than 4 bytes are there or they are not a word.
    pub fn detect(buf: &[u8]) -> Option<FourLetterWord> {
        let prefix: &[u8; 4] = buf.get(..4)?.try_into().ok()?;
        FourLetterWord::from_bytes(prefix)
    }

    /// The word as written in `4lw.commands.whitelist` and in replies
    /// (`"telnet close"` for [`FourLetterWord::TelnetClose`]).
    pub fn as_str(self) -> &'static str {
        match self {
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Dirs => "dirs",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Gtmk => "gtmk",
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Stmk => "stmk",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Wchs => "wchs",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Hash => "hash",
            FourLetterWord::TelnetClose => "telnet close",
        }
    }

    /// Looks a word up by its name, e.g. from `4lw.commands.whitelist`.
    pub fn from_name(name: &str) -> Option<FourLetterWord> {
        FourLetterWord::ALL
            .into_iter()
            .find(|word| word.as_str() == name)
    }

    /// Bytes the command reads after the word: `stmk` takes an 8-byte
    /// big-endian trace mask, the others nothing.
    pub fn argument_bytes(self) -> usize {
        match self {
            FourLetterWord::Stmk => 8,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_through_its_bytes_and_name() {
        for word in FourLetterWord::ALL {
            assert_eq!(FourLetterWord::from_bytes(&word.bytes()), Some(word));
            assert_eq!(FourLetterWord::from_name(word.as_str()), Some(word));
        }
    }

    #[test]
    fn ruok_is_recognised_and_upper_case_is_not() {
        assert_eq!(
            FourLetterWord::from_bytes(b"ruok"),
            Some(FourLetterWord::Ruok)
        );
        assert_eq!(FourLetterWord::from_bytes(b"RUOK"), None);
        assert_eq!(FourLetterWord::from_bytes(b"xyzw"), None);
    }

    #[test]
    fn a_connect_request_length_prefix_is_not_a_word() {
        assert_eq!(FourLetterWord::detect(&[0, 0, 0, 45, 0, 0]), None);
        assert_eq!(FourLetterWord::detect(b"sr"), None);
        assert_eq!(
            FourLetterWord::detect(b"srvr\n"),
            Some(FourLetterWord::Srvr)
        );
    }

    #[test]
    fn only_stmk_takes_an_argument() {
        assert_eq!(FourLetterWord::Stmk.argument_bytes(), 8);
        assert_eq!(FourLetterWord::Ruok.argument_bytes(), 0);
    }
}
