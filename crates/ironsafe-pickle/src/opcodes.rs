//! Pickle opcodes: every one the format defines, by its `pickletools` name,
//! so that even a refused opcode is named in the error.

macro_rules! opcodes {
    (
        read: { $($read:ident = $read_code:literal,)* }
        refused: { $($refused:ident = $refused_code:literal,)* }
    ) => {
        $(pub(crate) const $read: u8 = $read_code;)*

        /// The `pickletools` name of an opcode, if the byte is one.
        pub(crate) fn name(code: u8) -> Option<&'static str> {
            match code {
                $($read_code => Some(stringify!($read)),)*
                $($refused_code => Some(stringify!($refused)),)*
                _ => None,
            }
        }
    };
}

opcodes! {
    read: {
        MARK = b'(',
        STOP = b'.',
        POP = b'0',
        POP_MARK = b'1',
        BININT = b'J',
        BININT1 = b'K',
        BININT2 = b'M',
        NONE = b'N',
        BINPERSID = b'Q',
        REDUCE = b'R',
        BINUNICODE = b'X',
        APPEND = b'a',
        BUILD = b'b',
        GLOBAL = b'c',
        EMPTY_DICT = b'}',
        APPENDS = b'e',
        BINGET = b'h',
        LONG_BINGET = b'j',
        EMPTY_LIST = b']',
        BINPUT = b'q',
        LONG_BINPUT = b'r',
        SETITEM = b's',
        TUPLE = b't',
        EMPTY_TUPLE = b')',
        SETITEMS = b'u',
        BINFLOAT = b'G',
        PROTO = 0x80,
        NEWOBJ = 0x81,
        TUPLE1 = 0x85,
        TUPLE2 = 0x86,
        TUPLE3 = 0x87,
        NEWTRUE = 0x88,
        NEWFALSE = 0x89,
        LONG1 = 0x8a,
        LONG4 = 0x8b,
        BINBYTES = b'B',
        SHORT_BINBYTES = b'C',
        SHORT_BINUNICODE = 0x8c,
        BINUNICODE8 = 0x8d,
        BINBYTES8 = 0x8e,
        EMPTY_SET = 0x8f,
        ADDITEMS = 0x90,
        FROZENSET = 0x91,
        STACK_GLOBAL = 0x93,
        MEMOIZE = 0x94,
        FRAME = 0x95,
    }
    refused: {
        DUP = b'2',
        FLOAT = b'F',
        INT = b'I',
        LONG = b'L',
        PERSID = b'P',
        STRING = b'S',
        BINSTRING = b'T',
        SHORT_BINSTRING = b'U',
        UNICODE = b'V',
        DICT = b'd',
        GET = b'g',
        INST = b'i',
        LIST = b'l',
        OBJ = b'o',
        PUT = b'p',
        EXT1 = 0x82,
        EXT2 = 0x83,
        EXT4 = 0x84,
        NEWOBJ_EX = 0x92,
        BYTEARRAY8 = 0x96,
        NEXT_BUFFER = 0x97,
        READONLY_BUFFER = 0x98,
    }
}

/// Why a known opcode outside the allowlist is refused (INST `i`, OBJ `o`,
/// `NEWOBJ_EX`, EXT1 to EXT4, PERSID `P`, the protocol 5 buffers, the rest).
pub(crate) fn refusal(code: u8) -> &'static str {
    match code {
        b'i' | b'o' | 0x92 => "it instantiates a class by name",
        0x82..=0x84 => "it loads a global from the copyreg extension registry",
        b'P' => "torch writes binary persistent ids (BINPERSID) only",
        0x96..=0x98 => "out-of-band buffers are not part of a checkpoint",
        _ => "torch does not write it (text opcodes of protocols 0 and 1)",
    }
}
