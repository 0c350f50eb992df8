//! Weft's offline trace viewer: one self-contained HTML file.

/// The viewer: a single HTML file with no network access (no CDN, no
/// fonts, no fetch) that opens a Chrome trace written by Weft. Open it in
/// a browser and pick the trace file, or use [`viewer_with_trace`] to get a
/// page that shows one trace at once.
pub const VIEWER_HTML: &str = include_str!("viewer.html");

/// The marker in [`VIEWER_HTML`] where a trace is embedded.
const SLOT: &str = "/*WEFT_TRACE_DATA*/null";

/// The viewer with `trace_json` embedded: opening the page shows it.
pub fn viewer_with_trace(trace_json: &str) -> String {
    // A `</script>` inside the data would end the script element early.
    let safe = trace_json.replace("</", "<\\/");
    VIEWER_HTML.replacen(SLOT, &safe, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_viewer_has_one_slot_and_reaches_no_network() {
        assert_eq!(VIEWER_HTML.matches(SLOT).count(), 1);
        for banned in [
            "http://",
            "https://",
            "fetch(",
            "XMLHttpRequest",
            "<link",
            "@import",
            "src=\"",
        ] {
            assert!(
                !VIEWER_HTML.contains(banned),
                "the viewer must work offline: found {banned:?}"
            );
        }
        let page = viewer_with_trace(r#"{"traceEvents":[{"name":"</script>"}]}"#);
        assert!(page.contains(r#"{"traceEvents":[{"name":"<\/script>"}]}"#));
    }
}
