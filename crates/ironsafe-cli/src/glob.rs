//! Shell-style patterns for `--filter`: `*` (any run of characters, dots
//! included), `?` (one character), `[abc]`, `[a-z]`, `[!a-z]`, and `\` to
//! take the next character literally.

use std::str::FromStr;

/// A parsed pattern, matched against whole tensor names.
#[derive(Debug, Clone)]
pub(crate) struct Glob(Vec<Token>);

#[derive(Debug, Clone)]
enum Token {
    Char(char),
    AnyChar,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl FromStr for Glob {
    type Err = String;

    fn from_str(pattern: &str) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut at = 0;
        while at < chars.len() {
            let token = match chars[at] {
                '*' => Token::AnyRun,
                '?' => Token::AnyChar,
                '\\' => {
                    at += 1;
                    Token::Char(*chars.get(at).ok_or("the pattern ends with a lone `\\`")?)
                }
                '[' => {
                    let (class, end) = parse_class(&chars, at + 1)?;
                    at = end;
                    class
                }
                c => Token::Char(c),
            };
            tokens.push(token);
            at += 1;
        }
        Ok(Self(tokens))
    }
}

/// The class whose members start at `chars[at]` (after its `[`), and the
/// position of its closing `]`.
fn parse_class(chars: &[char], mut at: usize) -> Result<(Token, usize), String> {
    let next = |at: usize| {
        chars
            .get(at)
            .copied()
            .ok_or_else(|| "a `[` is never closed by `]`".to_owned())
    };
    let negated = matches!(chars.get(at), Some('!' | '^'));
    if negated {
        at += 1;
    }
    let start = at;
    let mut ranges = Vec::new();
    loop {
        let mut low = next(at)?;
        // A `]` first in the class is a member, not its end.
        if low == ']' && at > start {
            return Ok((Token::Class { negated, ranges }, at));
        }
        if low == '\\' {
            at += 1;
            low = next(at)?;
        }
        let mut high = low;
        if chars.get(at + 1) == Some(&'-') && chars.get(at + 2).is_some_and(|&c| c != ']') {
            high = next(at + 2)?;
            at += 2;
        }
        ranges.push((low, high));
        at += 1;
    }
}

impl Glob {
    /// Whether the whole of `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let (mut t, mut n) = (0, 0);
        // Where to resume after the last `*`: the token after it, and the
        // name position it has swallowed up to.
        let mut resume: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.0.get(t) {
                Some(Token::AnyRun) => {
                    resume = Some((t + 1, n));
                    t += 1;
                }
                Some(token) if token.matches(name[n]) => {
                    t += 1;
                    n += 1;
                }
                _ => match resume {
                    // Let the last `*` take one more character and retry.
                    Some((after, swallowed)) => {
                        resume = Some((after, swallowed + 1));
                        (t, n) = (after, swallowed + 1);
                    }
                    None => return false,
                },
            }
        }
        self.0[t..]
            .iter()
            .all(|token| matches!(token, Token::AnyRun))
    }
}

impl Token {
    /// Whether this single-character token matches `c`.
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Char(expected) => *expected == c,
            Token::AnyChar => true,
            Token::AnyRun => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(low, high)| (low..=high).contains(&c)) != *negated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        pattern.parse::<Glob>().unwrap().matches(name)
    }

    #[test]
    fn stars_cross_dots_and_questions_take_one() {
        assert!(matches("*.weight", "model.layers.0.mlp.weight"));
        assert!(matches("model.layers.?.*", "model.layers.3.mlp.weight"));
        assert!(!matches("model.layers.?.*", "model.layers.10.mlp.weight"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(!matches("weight", "weights"));
    }

    #[test]
    fn classes_ranges_negation_and_escapes() {
        assert!(matches("layers.[0-2].w", "layers.1.w"));
        assert!(!matches("layers.[0-2].w", "layers.5.w"));
        assert!(matches("layers.[!0-2].w", "layers.5.w"));
        assert!(matches("[]]", "]"));
        assert!(matches("[a-]", "-"));
        assert!(matches(r"a\*", "a*"));
        assert!(!matches(r"a\*", "ab"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        assert_eq!(
            "layers.[0-2".parse::<Glob>().unwrap_err(),
            "a `[` is never closed by `]`"
        );
        assert_eq!(
            r"a\".parse::<Glob>().unwrap_err(),
            "the pattern ends with a lone `\\`"
        );
    }
}
