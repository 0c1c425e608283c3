//! Output for the CLI: an aligned text table for people, JSON lines and CSV
//! (RFC 4180) for tools.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use super::{ActiveSession, StoredRecord, format_time};

/// Attributes longer than this are cut in the table; JSON and CSV keep all.
const TABLE_ATTRS_MAX: usize = 60;

/// A text table, one record per line.
pub fn write_table<W: Write + ?Sized>(out: &mut W, records: &[StoredRecord]) -> io::Result<()> {
    let header = [
        "ID",
        "RECEIVED (UTC)",
        "PROTO",
        "CLIENT",
        "ADDRESS",
        "USER",
        "SESSION",
        "STATUS",
        "ATTRIBUTES",
    ];
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let attrs = serde_json::to_string(&r.attributes).unwrap_or_default();
            vec![
                r.id.to_string(),
                format_time(r.received_at),
                r.protocol.to_string(),
                printable(&r.client),
                format!("{}:{}", r.client_addr, r.src_port),
                printable(&r.user),
                printable(&r.session_id),
                r.status.to_string(),
                truncate(&printable(&attrs), TABLE_ATTRS_MAX),
            ]
        })
        .collect();
    write_aligned(out, &header, &rows)
}

/// Active sessions as a text table.
pub fn write_sessions_table<W: Write + ?Sized>(
    out: &mut W,
    sessions: &[ActiveSession],
) -> io::Result<()> {
    let header = [
        "STARTED (UTC)",
        "LAST SEEN (UTC)",
        "PROTO",
        "CLIENT",
        "ADDRESS",
        "USER",
        "SESSION",
    ];
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                format_time(s.started_at),
                format_time(s.last_seen),
                s.protocol.to_string(),
                printable(&s.client),
                s.client_addr.to_string(),
                printable(&s.user),
                printable(&s.session_id),
            ]
        })
        .collect();
    write_aligned(out, &header, &rows)
}

/// One JSON object per line.
pub fn write_json_lines<W: Write + ?Sized>(
    out: &mut W,
    records: &[StoredRecord],
) -> io::Result<()> {
    for r in records {
        serde_json::to_writer(&mut *out, r)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// CSV with a header row, CRLF line ends; attributes as a JSON column.
pub fn write_csv<W: Write + ?Sized>(out: &mut W, records: &[StoredRecord]) -> io::Result<()> {
    out.write_all(
        b"id,received_at,protocol,client,client_addr,src_port,user,session_id,status,attributes,dedup_key\r\n",
    )?;
    let mut line = String::new();
    for r in records {
        line.clear();
        let attrs = serde_json::to_string(&r.attributes).map_err(io::Error::other)?;
        let fields: [&str; 11] = [
            &r.id.to_string(),
            &format_time(r.received_at),
            r.protocol.as_str(),
            &r.client,
            &r.client_addr.to_string(),
            &r.src_port.to_string(),
            &r.user,
            &r.session_id,
            &r.status.to_string(),
            &attrs,
            &r.dedup_key.to_hex(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&csv_field(f));
        }
        line.push_str("\r\n");
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Quotes a field when it holds a comma, quote, CR or LF (doubling quotes),
/// and when it has edge whitespace that some readers would trim.
pub(super) fn csv_field(s: &str) -> Cow<'_, str> {
    let needs = s.contains([',', '"', '\r', '\n'])
        || s.starts_with([' ', '\t'])
        || s.ends_with([' ', '\t']);
    if !needs {
        return Cow::Borrowed(s);
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' {
            q.push('"');
        }
        q.push(c);
    }
    q.push('"');
    Cow::Owned(q)
}

/// User names and session ids come off the network: escape control
/// characters so a crafted value cannot drive the operator's terminal.
fn printable(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(o, "{}", c.escape_default());
        } else {
            o.push(c);
        }
    }
    o
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

fn write_aligned<W: Write + ?Sized>(
    out: &mut W,
    header: &[&str],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = String::new();
    let mut emit = |cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        line.clear();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < widths.len() {
                let pad = w - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())
    };
    emit(&mut header.iter().copied())?;
    for row in rows {
        emit(&mut row.iter().map(String::as_str))?;
    }
    Ok(())
}
