//! Per-role command authorization: ordered permit/deny rules matched against
//! the command and its arguments as words; the first match wins, else the
//! role's default. Patterns are words, not regexes, so operators can read them.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Permit,
    Deny,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "permit" => Some(Self::Permit),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permit => "permit",
            Self::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    /// Matches this word exactly (ASCII case-insensitive, as network CLIs are).
    Exact(Box<str>),
    /// `conf*`: matches a word that starts with `conf`.
    Prefix(Box<str>),
    /// `*` alone: zero or more words.
    Any,
}

/// A compiled pattern such as `show *`, `ping *`, `configure terminal`,
/// `interface Gi*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPattern {
    words: Box<[Word]>,
    text: Box<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty pattern")]
    Empty,
    #[error("`*` may only end a word, as in `conf*`")]
    InnerWildcard,
}

impl CommandPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let words: Vec<Word> = text
            .split_ascii_whitespace()
            .map(|w| {
                if w == "*" {
                    Ok(Word::Any)
                } else if let Some(p) = w.strip_suffix('*') {
                    if p.contains('*') {
                        Err(PatternError::InnerWildcard)
                    } else {
                        Ok(Word::Prefix(p.into()))
                    }
                } else if w.contains('*') {
                    Err(PatternError::InnerWildcard)
                } else {
                    Ok(Word::Exact(w.into()))
                }
            })
            .collect::<Result<_, _>>()?;
        // `* *` means the same as `*`; collapsing keeps matching linear-ish.
        let mut words = words;
        words.dedup_by(|a, b| *a == Word::Any && *b == Word::Any);
        if words.is_empty() {
            return Err(PatternError::Empty);
        }
        Ok(Self {
            words: words.into(),
            text: text
                .split_ascii_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .into(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, words: &[&str]) -> bool {
        match_words(&self.words, words)
    }
}

fn match_words(pat: &[Word], words: &[&str]) -> bool {
    match pat.split_first() {
        None => words.is_empty(),
        Some((Word::Any, rest)) => (0..=words.len()).any(|skip| match_words(rest, &words[skip..])),
        Some((w, rest)) => match words.split_first() {
            None => false,
            Some((first, more)) => {
                let ok = match w {
                    Word::Exact(e) => first.eq_ignore_ascii_case(e),
                    Word::Prefix(p) => {
                        first.len() >= p.len()
                            && first.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                    }
                    Word::Any => unreachable!("handled above"),
                };
                ok && match_words(rest, more)
            }
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRule {
    pub action: Action,
    pub pattern: CommandPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRules {
    pub default: Action,
    pub rules: Vec<CommandRule>,
}

/// The outcome of a command check and the rule that produced it (`None`:
/// the role's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandVerdict<'a> {
    pub action: Action,
    pub rule: Option<(usize, &'a CommandRule)>,
    /// Denied unjudged: more than [`MAX_WORDS`] words, so no rule could
    /// see the whole command (a deny rule might match past the cut).
    pub too_long: bool,
}

impl CommandVerdict<'_> {
    /// The verdict on a command longer than [`MAX_WORDS`] words.
    pub const TOO_LONG: CommandVerdict<'static> = CommandVerdict {
        action: Action::Deny,
        rule: None,
        too_long: true,
    };
}

impl fmt::Display for CommandVerdict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.too_long {
            return write!(
                f,
                "{}: longer than {MAX_WORDS} words, which the rules cannot judge whole",
                self.action.as_str()
            );
        }
        match self.rule {
            Some((i, r)) => write!(
                f,
                "{} by rule #{} `{}`",
                self.action.as_str(),
                i + 1,
                r.pattern.as_str()
            ),
            None => write!(f, "{} by the role's default", self.action.as_str()),
        }
    }
}

/// Commands longer than this many words are denied without being judged:
/// judging their first words only could miss a deny rule.
pub const MAX_WORDS: usize = 64;

impl CommandRules {
    pub fn permit_all() -> Self {
        Self {
            default: Action::Permit,
            rules: Vec::new(),
        }
    }

    /// Checks a command given as words (`["show", "running-config"]`).
    pub fn check(&self, words: &[&str]) -> CommandVerdict<'_> {
        if words.len() > MAX_WORDS {
            return CommandVerdict::TOO_LONG;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.pattern.matches(words) {
                return CommandVerdict {
                    action: rule.action,
                    rule: Some((i, rule)),
                    too_long: false,
                };
            }
        }
        CommandVerdict {
            action: self.default,
            rule: None,
            too_long: false,
        }
    }

    /// Checks a command line, splitting on whitespace without allocating.
    pub fn check_line(&self, line: &str) -> CommandVerdict<'_> {
        let mut buf = [""; MAX_WORDS];
        let mut n = 0;
        for w in line.split_ascii_whitespace() {
            if n == MAX_WORDS {
                return CommandVerdict::TOO_LONG;
            }
            buf[n] = w;
            n += 1;
        }
        self.check(&buf[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_longer_than_the_rules_can_see_are_denied() {
        let rules = CommandRules::permit_all();
        let line = |n: usize| vec!["show"; n].join(" ");
        assert_eq!(rules.check_line(&line(MAX_WORDS)).action, Action::Permit);
        let v = rules.check_line(&line(MAX_WORDS + 1));
        assert_eq!(v.action, Action::Deny);
        assert!(v.too_long);
        assert!(v.to_string().contains("longer than 64 words"), "{v}");
        let words = vec!["show"; MAX_WORDS + 1];
        assert!(rules.check(&words).too_long);
        assert!(!rules.check(&words[..MAX_WORDS]).too_long);
    }

    fn rules(default: Action, pats: &[(Action, &str)]) -> CommandRules {
        CommandRules {
            default,
            rules: pats
                .iter()
                .map(|(a, p)| CommandRule {
                    action: *a,
                    pattern: CommandPattern::parse(p).unwrap(),
                })
                .collect(),
        }
    }

    #[test]
    fn helpdesk_may_show_and_ping_only() {
        let r = rules(
            Action::Deny,
            &[(Action::Permit, "show *"), (Action::Permit, "ping *")],
        );
        assert_eq!(r.check_line("show running-config").action, Action::Permit);
        assert_eq!(r.check_line("show").action, Action::Permit);
        assert_eq!(r.check_line("PING 10.0.0.1").action, Action::Permit);
        assert_eq!(r.check_line("reload").action, Action::Deny);
        assert_eq!(r.check_line("showx").action, Action::Deny);
        assert!(r.check_line("reload").rule.is_none());
    }

    #[test]
    fn first_match_wins_and_prefix_words_work() {
        let r = rules(
            Action::Permit,
            &[
                (Action::Deny, "conf* t*"),
                (Action::Permit, "configure terminal"),
            ],
        );
        let v = r.check_line("configure terminal");
        assert_eq!(v.action, Action::Deny);
        assert_eq!(v.rule.unwrap().0, 0);
        assert_eq!(r.check_line("configure replace").action, Action::Permit);
    }

    #[test]
    fn inner_star_is_allowed_as_its_own_word() {
        let r = rules(Action::Deny, &[(Action::Permit, "show * brief")]);
        assert_eq!(
            r.check_line("show ip interface brief").action,
            Action::Permit
        );
        assert_eq!(r.check_line("show brief").action, Action::Permit);
        assert_eq!(r.check_line("show ip interface").action, Action::Deny);
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert_eq!(CommandPattern::parse("  "), Err(PatternError::Empty));
        assert_eq!(
            CommandPattern::parse("sh*w"),
            Err(PatternError::InnerWildcard)
        );
    }
}
