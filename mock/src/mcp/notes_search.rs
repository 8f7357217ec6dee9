//! `nc_notes_search_notes` as nextcloud-mcp-server does it (controllers/notes_search.py): the
//! server pages in all the user's notes and scores them itself — whole lowercase tokens of the
//! query (longer than one character) against the title's and the content's tokens, title
//! weighing 3 and content 1, hits from 0.5 up, best first. An empty query returns every note.

use crate::state::Note;

const TITLE_WEIGHT: f64 = 3.0;
const CONTENT_WEIGHT: f64 = 1.0;
const MIN_SCORE: f64 = 0.5;

/// One hit: the note and its score (`None` for the unfiltered listing of an empty query).
pub struct Hit<'a> {
    pub note: &'a Note,
    pub score: Option<f64>,
}

fn tokens(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The hits for `query` among `notes` (in the Notes API's order), best first; equal scores
/// keep that order, as Python's stable sort does.
pub fn search<'a>(notes: &'a [Note], query: &str) -> Vec<Hit<'a>> {
    let query: Vec<String> = tokens(query)
        .into_iter()
        .filter(|t| t.chars().count() > 1)
        .collect();
    if query.is_empty() {
        return notes.iter().map(|note| Hit { note, score: None }).collect();
    }
    let mut hits: Vec<Hit> = notes
        .iter()
        .filter_map(|note| {
            let (title, content) = (tokens(&note.title), tokens(&note.content));
            let in_title = query.iter().filter(|q| title.contains(q)).count();
            let in_content = query.iter().filter(|q| content.contains(q)).count();
            if in_title == 0 && in_content == 0 {
                return None;
            }
            let n = query.len() as f64;
            let score = TITLE_WEIGHT * in_title as f64 / n + CONTENT_WEIGHT * in_content as f64 / n;
            (score >= MIN_SCORE).then_some(Hit {
                note,
                score: Some(score),
            })
        })
        .collect();
    hits.sort_by(|a, b| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)));
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(id: u64, title: &str, content: &str) -> Note {
        Note {
            id,
            etag: String::new(),
            readonly: false,
            modified: 0,
            title: title.into(),
            category: String::new(),
            content: content.into(),
            favorite: false,
        }
    }

    #[test]
    fn whole_tokens_scored_title_first() {
        let notes = vec![
            note(1, "baseline-abc", "x"),
            note(2, "other", "about baseline-abc today"),
            note(3, "baseline-abcdef", "baseline-ab"),
            note(4, "Plan", "nothing"),
        ];
        let check = |query: &str, expected: &[(u64, Option<f64>)]| {
            let got: Vec<(u64, Option<f64>)> = search(&notes, query)
                .iter()
                .map(|h| (h.note.id, h.score))
                .collect();
            assert_eq!(got, expected, "{query:?}");
        };
        check("baseline-abc", &[(1, Some(3.0)), (2, Some(1.0))]);
        check("BASELINE-ABC", &[(1, Some(3.0)), (2, Some(1.0))]);
        check("plan today", &[(4, Some(1.5)), (2, Some(0.5))]);
        check("a", &[(1, None), (2, None), (3, None), (4, None)]);
        check("baseline", &[]);
    }
}
