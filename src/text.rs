//! Text that came from a request or a token, made safe to put in an error description, a log
//! line or an audit record: control characters (line breaks, escapes, NUL) dropped and the
//! length bounded, with `…` marking a cut. The one sanitiser every layer uses; it knows
//! nothing about where the text goes. Also [`split_ascii`], how such text is cut at a
//! separator (form pairs, token parts).

use std::borrow::Cow;

/// `value` without control characters, at most `max_chars` characters long; `…` is appended
/// when characters were cut.
pub fn shown(value: &str, max_chars: usize) -> String {
    shown_borrowed(value, max_chars).into_owned()
}

/// [`shown`], borrowing `value` when it is already safe to show as is (printable ASCII within
/// the bound: subjects, names and ids, nearly every value), so that it is not copied.
pub fn shown_borrowed(value: &str, max_chars: usize) -> Cow<'_, str> {
    if value.len() <= max_chars && value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Cow::Borrowed(value);
    }
    let mut kept = value.chars().filter(|c| !c.is_control());
    let mut out: String = kept.by_ref().take(max_chars).collect();
    if kept.next().is_some() {
        out.push('…');
    }
    Cow::Owned(out)
}

/// `text.split(sep)` for an ASCII `sep`, each separator found by `memchr`'s vectorised search
/// rather than `str::split`'s: the form bodies and tokens it cuts carry a kilobyte of base64url
/// between separators. Cutting at an ASCII byte always leaves whole characters on both sides.
pub fn split_ascii(text: &str, sep: u8) -> impl Iterator<Item = &str> {
    debug_assert!(
        sep.is_ascii(),
        "only an ASCII separator cuts between characters"
    );
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(sep, current.as_bytes()) {
            Some(at) => {
                rest = current.get(at + 1..);
                current.get(..at)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Longest value echoed back from a token or a request in a description.
pub const MAX_ECHO: usize = 120;

/// A token- or caller-supplied value made safe to echo in a description: [`shown`] at
/// [`MAX_ECHO`] characters.
pub fn echo(value: &str) -> String {
    shown(value, MAX_ECHO)
}

/// At most five values, each [`echo`]ed and quoted, as `['a', 'b', …]`.
pub fn list(values: &[String]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .take(5)
        .map(|v| format!("'{}'", echo(v)))
        .collect();
    let more = if values.len() > 5 { ", …" } else { "" };
    format!("[{}{more}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::{shown, shown_borrowed, split_ascii};
    use proptest::prelude::*;

    #[test]
    fn drops_control_characters_and_marks_cuts() {
        assert_eq!(shown("a\nb\u{1b}[31mc", 10), "ab[31mc");
        assert_eq!(shown("abcdef", 3), "abc…");
        assert_eq!(shown("abc", 3), "abc");
        assert_eq!(shown("", 3), "");
    }

    proptest! {
        #[test]
        fn split_ascii_cuts_as_str_split_does(
            text in "[a.&=%+é\u{0}-]{0,40}",
            sep in proptest::sample::select(vec![b'.', b'&', b'=', b'x']),
        ) {
            let ours: Vec<&str> = split_ascii(&text, sep).collect();
            let std: Vec<&str> = text.split(char::from(sep)).collect();
            prop_assert_eq!(ours, std);
        }

        #[test]
        fn bounded_and_printable(value in ".*", max in 0usize..50) {
            let out = shown(&value, max);
            prop_assert!(out.chars().count() <= max + 1);
            prop_assert!(!out.chars().any(char::is_control));
        }

        #[test]
        fn the_fast_path_equals_the_filter(value in "[ -~\t\n\u{7f}\u{85}é]{0,20}", max in 0usize..25) {
            let kept: String = value.chars().filter(|c| !c.is_control()).collect();
            let mut expected: String = kept.chars().take(max).collect();
            if kept.chars().count() > max {
                expected.push('…');
            }
            prop_assert_eq!(shown(&value, max), expected.as_str());
            // The borrowing form says the same; it borrows only what is unchanged, and always
            // borrows printable ASCII within the bound.
            let borrowed = shown_borrowed(&value, max);
            prop_assert_eq!(borrowed.as_ref(), expected.as_str());
            let plain = value.len() <= max && value.bytes().all(|b| (0x20..0x7f).contains(&b));
            prop_assert_eq!(matches!(borrowed, Cow::Borrowed(_)), plain);
            if plain {
                prop_assert_eq!(&expected, &value);
            }
        }
    }
}
