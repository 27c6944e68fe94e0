//! The self-contained HTML dashboard (inline SVG/CSS, no network).
