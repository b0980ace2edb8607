//! Keyset pagination with opaque tokens. A token encodes the last name returned; the next
//! page starts after it, so pages stay stable while entries are added or removed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{CatalogError, CatalogResult};

/// The largest page the server returns, whatever the client asks for.
pub const MAX_PAGE_SIZE: usize = 1000;

/// A page request as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// `Some("")` asks for the first page; `None` asks for every result in one response.
    pub token: Option<String>,
    pub size: Option<usize>,
}

/// A validated page request.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub after: Option<String>,
    pub limit: Option<usize>,
}

/// One page of results and the token for the next page, if there is one.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl<T> Paged<T> {
    /// No results and no next page.
    pub fn empty() -> Self {
        Self {
            items: Vec::new(),
            next_page_token: None,
        }
    }
}

impl PageRequest {
    pub(crate) fn parse(&self) -> CatalogResult<Page> {
        if self.size == Some(0) {
            return Err(CatalogError::BadRequest(
                "pageSize must be at least 1".into(),
            ));
        }
        let after = match self.token.as_deref() {
            None | Some("") => None,
            Some(token) => Some(decode_token(token)?),
        };
        // Without a token and a size, the spec asks for every result in one response.
        let limit = match (&self.token, self.size) {
            (None, None) => None,
            (_, size) => Some(size.unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
        };
        Ok(Page { after, limit })
    }
}

impl Page {
    /// Asks the store for one more row than the page holds, to know whether more follow.
    pub(crate) fn fetch_limit(&self) -> Option<usize> {
        self.limit.map(|l| l + 1)
    }

    /// Cuts the extra row and makes the next token from the last name kept.
    pub(crate) fn finish<T>(&self, mut items: Vec<T>, name_of: impl Fn(&T) -> String) -> Paged<T> {
        let next_page_token = match self.limit {
            Some(limit) if items.len() > limit => {
                items.truncate(limit);
                items.last().map(|last| encode_token(&name_of(last)))
            }
            _ => None,
        };
        Paged {
            items,
            next_page_token,
        }
    }
}

fn encode_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

fn decode_token(token: &str) -> CatalogResult<String> {
    URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        // Names never hold NUL (databases refuse it); a token with one was not issued here.
        .filter(|name| !name.contains('\0'))
        .ok_or_else(|| {
            CatalogError::BadRequest(format!(
                "pageToken '{token}' is not a token this server issued"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_tokens_are_rejected() {
        let page = PageRequest {
            token: Some(encode_token("a\u{1F}b")),
            size: Some(2),
        }
        .parse()
        .unwrap();
        assert_eq!(page.after.as_deref(), Some("a\u{1F}b"));
        assert_eq!(page.fetch_limit(), Some(3));
        assert!(
            PageRequest {
                token: Some("%%%".into()),
                size: None
            }
            .parse()
            .is_err()
        );
        let nul = PageRequest {
            token: Some(encode_token("a\u{0}b")),
            size: None,
        };
        assert!(nul.parse().is_err(), "a token holding NUL is refused");
        assert!(
            PageRequest {
                token: None,
                size: Some(0)
            }
            .parse()
            .is_err()
        );
        assert_eq!(PageRequest::default().parse().unwrap().limit, None);
    }

    #[test]
    fn finish_cuts_the_probe_row() {
        let page = PageRequest {
            token: Some(String::new()),
            size: Some(2),
        }
        .parse()
        .unwrap();
        let paged = page.finish(vec!["a".to_string(), "b".into(), "c".into()], Clone::clone);
        assert_eq!(paged.items, vec!["a", "b"]);
        assert_eq!(
            decode_token(paged.next_page_token.as_deref().unwrap()).unwrap(),
            "b"
        );
        let last = page.finish(vec!["a".to_string()], Clone::clone);
        assert!(last.next_page_token.is_none());
    }
}
