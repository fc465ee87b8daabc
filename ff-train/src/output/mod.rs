//! What a person reads: [`report`] (tables, the verdict sentence, `result.json`'s record) and
//! [`plot`] (line plots as SVG and PNG, drawn with `plotters`).

pub mod plot;
pub mod report;
