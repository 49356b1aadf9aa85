//! Server-sent events: `data` events carry stream data, `control` events carry the next offset,
//! cursor and state. Every line of a payload gets its own `data:` line (CR, LF and CRLF all
//! split), so data can never inject an event boundary.

use serde_json::json;

pub fn event(kind: &str, payload: &str) -> String {
    let mut out = format!("event: {kind}\n");
    for line in payload.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
        out.push_str("data:");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// What a control event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control<'a> {
    /// More may come: the cursor, and whether the reader has everything stored.
    Open { cursor: &'a str, up_to_date: bool },
    /// The stream is closed and the reader has all of it: the last event.
    Closed,
}

pub fn control_event(next_offset: &str, control: Control) -> String {
    let body = match control {
        Control::Open { cursor, up_to_date: true } => {
            json!({ "streamNextOffset": next_offset, "streamCursor": cursor, "upToDate": true })
        }
        Control::Open { cursor, up_to_date: false } => json!({ "streamNextOffset": next_offset, "streamCursor": cursor }),
        Control::Closed => json!({ "streamNextOffset": next_offset, "streamClosed": true }),
    };
    event("control", &body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_lines_cannot_inject_events() {
        assert_eq!(event("data", "a\r\n\r\nevent: control\rb\nc"), "event: data\ndata:a\ndata:\ndata:event: control\ndata:b\ndata:c\n\n");
        assert_eq!(event("data", ""), "event: data\ndata:\n\n");
    }

    #[test]
    fn control_events() {
        let open = control_event("0000000000000001_0000000000000000", Control::Open { cursor: "7", up_to_date: true });
        assert_eq!(open, "event: control\ndata:{\"streamNextOffset\":\"0000000000000001_0000000000000000\",\"streamCursor\":\"7\",\"upToDate\":true}\n\n");
        let closed = control_event("x", Control::Closed);
        assert!(closed.contains("\"streamClosed\":true") && !closed.contains("streamCursor"));
    }
}
