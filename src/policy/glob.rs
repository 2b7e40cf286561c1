//! Segment-aware subject globs (`subjectPattern`).
//!
//! `*` matches within one segment: any run of characters except `/` and `:`. `**` matches
//! across `/` but never `:`, so a pattern can never let a token jump from one subject field
//! (`repo:`, `ref:`, `environment:`) into another. Everything else matches literally and
//! case-sensitively, against the whole subject.
//!
//! Matching is a dynamic program over (pattern token, subject character): O(pattern × subject)
//! time and O(subject) memory whatever the input, so a hostile subject cannot make it
//! backtrack exponentially. No regex engine is involved.

/// Runs of this many `*` or more are refused: they mean nothing more than `**` and usually
/// betray a typo.
const MAX_STAR_RUN: usize = 2;

/// A compiled subject pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPattern {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters other than `/` and `:`.
    Segment,
    /// `**`: any run of characters other than `:`.
    Path,
}

impl Token {
    fn run_accepts(self, c: char) -> bool {
        match self {
            Token::Segment => c != '/' && c != ':',
            Token::Path => c != ':',
            Token::Literal(_) => false,
        }
    }
}

/// Why a pattern was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct GlobError(pub String);

impl SubjectPattern {
    /// Parses `pattern`.
    ///
    /// # Errors
    /// An empty pattern, or one holding a run of three or more `*`.
    pub fn parse(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError("subject pattern is empty".into()));
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '*' {
                tokens.push(Token::Literal(c));
                continue;
            }
            let mut run = 1;
            while chars.next_if_eq(&'*').is_some() {
                run += 1;
            }
            match run {
                1 => tokens.push(Token::Segment),
                2 => tokens.push(Token::Path),
                _ => {
                    return Err(GlobError(format!(
                        "subject pattern {pattern:?} has a run of {run} '*'; at most \
                         {MAX_STAR_RUN} are allowed ('*' within a segment, '**' across '/')"
                    )));
                }
            }
        }
        Ok(Self {
            source: pattern.to_string(),
            tokens,
        })
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The literal text before the first `*`: every subject this pattern matches starts with
    /// it (the whole pattern when it has no `*`). Lets an index skip patterns a subject cannot
    /// match without running them.
    pub fn literal_prefix(&self) -> &str {
        self.source
            .find('*')
            .map_or(self.source.as_str(), |star| &self.source[..star])
    }

    /// Whether the whole of `subject` matches.
    pub fn matches(&self, subject: &str) -> bool {
        let chars: Vec<char> = subject.chars().collect();
        // reach[j]: the pattern tokens consumed so far can match exactly chars[..j].
        let mut reach = vec![false; chars.len() + 1];
        reach[0] = true;
        let mut next = vec![false; chars.len() + 1];
        for &token in &self.tokens {
            match token {
                Token::Literal(lit) => {
                    next[0] = false;
                    for j in 1..=chars.len() {
                        next[j] = reach[j - 1] && chars[j - 1] == lit;
                    }
                }
                Token::Segment | Token::Path => {
                    next[0] = reach[0];
                    for j in 1..=chars.len() {
                        next[j] = reach[j] || (next[j - 1] && token.run_accepts(chars[j - 1]));
                    }
                }
            }
            std::mem::swap(&mut reach, &mut next);
            if !reach.iter().any(|&r| r) {
                return false;
            }
        }
        reach[chars.len()]
    }
}

#[cfg(test)]
mod tests;
