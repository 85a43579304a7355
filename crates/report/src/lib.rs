//! Evidence for every control of the security page, rendered as HTML, JSON and Markdown.
