//! CSV downloads (`/api/logs/export`, `/api/audit/export`): the matching rows
//! as an attachment, newest first, streamed a chunk of rows at a time so an
//! export of millions of rows never sits in memory whole.

use std::future::Future;

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::{stream, StreamExt};

use crate::error::ApiError;

/// Rows per query: enough to amortise the round trip, few enough to keep memory flat.
pub const CHUNK: u64 = 1000;

/// A CSV attachment named `filename`: a header row of `columns`, then `cells`
/// of every row `page` reads. `page(before)` answers up to [`CHUNK`] rows,
/// newest first, older than the row id `before` (from the newest when `None`).
pub async fn csv_download<R, P, F, const N: usize>(
    filename: &'static str,
    columns: [&'static str; N],
    cells: fn(&R) -> [String; N],
    id: fn(&R) -> i64,
    page: P,
) -> Result<HttpResponse, ApiError>
where
    R: 'static,
    P: Fn(Option<i64>) -> F + Clone + 'static,
    F: Future<Output = Result<Vec<R>, ApiError>> + 'static,
{
    // The first chunk is read before answering, so a failing database is a 500, not a
    // 200 with a truncated file.
    let first = page(None).await?;
    let head = csv_chunk(filename, Some(&columns), &first, cells)?;
    let rest = stream::try_unfold(resume_after(&first, id), move |before| {
        let page = page.clone();
        async move {
            let Some(before) = before else { return Ok(None) };
            let rows = page(Some(before)).await?;
            Ok(Some((
                csv_chunk(filename, None, &rows, cells)?,
                resume_after(&rows, id),
            )))
        }
    });
    let body = stream::once(async { Ok(head) }).chain(rest).map(move |chunk| {
        chunk.inspect_err(|e: &ApiError| tracing::error!(error = %e, filename, "CSV export cut short"))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(body))
}

/// Where the next chunk starts, or `None` when this one was the last.
fn resume_after<R>(rows: &[R], id: fn(&R) -> i64) -> Option<i64> {
    if rows.len() as u64 == CHUNK {
        rows.last().map(id)
    } else {
        None
    }
}

fn csv_chunk<R, const N: usize>(
    filename: &str,
    columns: Option<&[&str; N]>,
    rows: &[R],
    cells: fn(&R) -> [String; N],
) -> Result<Bytes, ApiError> {
    let failed =
        |e: csv::Error| ApiError::Internal(anyhow::Error::new(e).context(format!("writing {filename}")));
    let mut out = csv::Writer::from_writer(Vec::new());
    if let Some(columns) = columns {
        out.write_record(columns).map_err(failed)?;
    }
    for row in rows {
        out.write_record(cells(row)).map_err(failed)?;
    }
    let bytes = out.into_inner().map_err(|e| failed(e.into_error().into()))?;
    Ok(Bytes::from(bytes))
}

/// A text cell a spreadsheet will not run as a formula. Names are chosen by
/// users and errors quote providers, while the admin opening the export is the
/// one a formula would attack; a leading `'` makes the cell plain text.
pub fn spreadsheet_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}
