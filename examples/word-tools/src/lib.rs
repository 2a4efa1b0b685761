//! Word statistics for text: a complete berth tools plugin, written only
//! against berth-sdk's public API.

use std::collections::BTreeMap;

use berth_sdk::{LogLevel, Plugin, ToolOutput, ToolSpec, Toolbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Text to analyse.
#[derive(Deserialize, JsonSchema)]
struct TextArgs {
    /// The text.
    text: String,
}

/// Arguments of `top_words`.
#[derive(Deserialize, JsonSchema)]
struct TopArgs {
    /// The text.
    text: String,
    /// How many words to return (1-100).
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

/// One word and how often it occurs.
#[derive(Serialize, JsonSchema)]
struct WordCount {
    /// The word, lower-cased.
    word: String,
    /// Occurrences.
    count: u32,
}

/// The most frequent words.
#[derive(Serialize, JsonSchema)]
struct TopWords {
    /// Words, most frequent first.
    words: Vec<WordCount>,
}

const TOTAL_KEY: &str = "total-words";

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Add `n` to the running total kept in plugin state; returns the new total.
fn add_to_total(n: u64) -> berth_sdk::Result<u64> {
    let previous = berth_sdk::state::get(TOTAL_KEY)?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0);
    let total = previous + n;
    berth_sdk::state::set(TOTAL_KEY, total.to_string().as_bytes())?;
    Ok(total)
}

fn count_words(args: TextArgs) -> berth_sdk::Result<ToolOutput> {
    let count = words(&args.text).count() as u64;
    let total = add_to_total(count)?;
    berth_sdk::log(LogLevel::Debug, format!("counted {count} words"));
    Ok(ToolOutput::text(format!(
        "{count} words ({total} counted so far)"
    )))
}

fn top_words(args: TopArgs) -> berth_sdk::Result<TopWords> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for word in words(&args.text) {
        *counts.entry(word).or_default() += 1;
    }
    let mut ranked: Vec<WordCount> = counts
        .into_iter()
        .map(|(word, count)| WordCount { word, count })
        .collect();
    ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    ranked.truncate(args.limit as usize);
    Ok(TopWords { words: ranked })
}

struct WordTools;

impl Plugin for WordTools {
    fn description() -> String {
        "Word statistics for text".into()
    }

    fn toolbox() -> Toolbox {
        Toolbox::new()
            .tool(
                ToolSpec::new("count_words", "Count the words in a text").title("Count words"),
                count_words,
            )
            .typed_tool(
                ToolSpec::new(
                    "top_words",
                    "The most frequent words of a text, most frequent first",
                )
                .title("Top words")
                .read_only()
                .idempotent(),
                top_words,
            )
    }
}

berth_sdk::export_tools!(WordTools);
