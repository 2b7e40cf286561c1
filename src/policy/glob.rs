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

    /// Whether some subject matches both `self` and `other` (used by `policy check` to find
    /// credentials that can match the same token).
    ///
    /// A search over pairs of positions in the two token lists, O(|self| × |other|): a star may
    /// match nothing (advance past it), or both sides consume one common character. Two stars
    /// consuming together never need to (any string they share is found by letting one of them
    /// skip), so only literal-involving moves consume.
    pub fn intersects(&self, other: &SubjectPattern) -> bool {
        let (a, b) = (&self.tokens, &other.tokens);
        let width = b.len() + 1;
        let mut seen = vec![false; (a.len() + 1) * width];
        let mut stack = vec![(0usize, 0usize)];
        while let Some((i, j)) = stack.pop() {
            if std::mem::replace(&mut seen[i * width + j], true) {
                continue;
            }
            if i == a.len() && j == b.len() {
                return true;
            }
            let (ta, tb) = (a.get(i).copied(), b.get(j).copied());
            if matches!(ta, Some(Token::Segment | Token::Path)) {
                stack.push((i + 1, j));
            }
            if matches!(tb, Some(Token::Segment | Token::Path)) {
                stack.push((i, j + 1));
            }
            match (ta, tb) {
                (Some(Token::Literal(x)), Some(Token::Literal(y))) if x == y => {
                    stack.push((i + 1, j + 1));
                }
                (Some(Token::Literal(x)), Some(star)) if star.run_accepts(x) => {
                    stack.push((i + 1, j));
                }
                (Some(star), Some(Token::Literal(y))) if star.run_accepts(y) => {
                    stack.push((i, j + 1));
                }
                _ => {}
            }
        }
        false
    }

    /// Whether the pattern starts with a wildcard, holds `**` before its first `/`, or holds `*`
    /// before a `/`: on subjects like `repo:OWNER/REPO:...` such a wildcard lets any owner match.
    pub fn wildcard_owner(&self) -> bool {
        let leading = matches!(self.tokens.first(), Some(Token::Segment | Token::Path));
        let owner = || {
            self.tokens
                .iter()
                .take_while(|t| **t != Token::Literal('/'))
        };
        let has_slash = self.tokens.contains(&Token::Literal('/'));
        // `**` before the first `/` spans every owner even when the pattern holds no `/`.
        let path_star = owner().any(|t| *t == Token::Path);
        let star = owner().any(|t| *t == Token::Segment);
        leading || path_star || (has_slash && star)
    }
}

#[cfg(test)]
mod tests;
