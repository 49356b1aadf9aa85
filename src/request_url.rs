//! The parts of a request's URL the Worker reads: the query's parameters and the address without
//! its query. workerd hands the URL over already parsed and serialized (WHATWG), so splitting the
//! string is enough. Parsing it again with worker's `Request::url` brought in the `url` crate and
//! its IDNA tables, 153 KB of the wasm (69 KB gzipped; bench/RESULTS.md § Bundle size and cold start).

/// `url` up to its query or fragment.
pub fn without_query(url: &str) -> &str {
    &url[..url.find(['?', '#']).unwrap_or(url.len())]
}

/// The query of `url` (after `?`, before `#`), still encoded.
fn encoded_query(url: &str) -> &str {
    let before_fragment = &url[..url.find('#').unwrap_or(url.len())];
    before_fragment.split_once('?').map_or("", |(_, query)| query)
}

/// The query's parameters, decoded (`application/x-www-form-urlencoded`), in order.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(encoded_query(url).as_bytes()).into_owned().collect()
}

/// `url` without its fragment and with `pairs`, encoded, as its query.
pub fn with_query<K: AsRef<str>, V: AsRef<str>>(url: &str, pairs: impl IntoIterator<Item = (K, V)>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name.as_ref(), value.as_ref());
    }
    format!("{}?{}", without_query(url), query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_split_off_and_decoded() {
        let url = "https://h.example/v1/files/a%20b?prefix=x%2Fy&apiKey=k+1&flag&prefix=z#frag?ment";
        assert_eq!(without_query(url), "https://h.example/v1/files/a%20b");
        let pairs = query_pairs(url);
        let expected = [("prefix", "x/y"), ("apiKey", "k 1"), ("flag", ""), ("prefix", "z")];
        assert_eq!(pairs, expected.map(|(n, v)| (n.to_string(), v.to_string())));
    }

    #[test]
    fn a_url_without_a_query_has_no_parameters() {
        for url in ["http://127.0.0.1:8787/ds/a", "http://127.0.0.1:8787/ds/a?", "http://127.0.0.1:8787/ds/a#x?y=1"] {
            assert_eq!(query_pairs(url), Vec::<(String, String)>::new(), "{url}");
            assert_eq!(without_query(url), "http://127.0.0.1:8787/ds/a");
        }
    }

    #[test]
    fn a_new_query_replaces_the_old_one_and_the_fragment() {
        let url = "https://h.example/v1/files/k?link&apiKey=secret#top";
        let signed = with_query(url, [("method", "GET".to_string()), ("contentType", "text/plain; a=b&c".to_string())]);
        assert_eq!(signed, "https://h.example/v1/files/k?method=GET&contentType=text%2Fplain%3B+a%3Db%26c");
        assert_eq!(query_pairs(&signed)[1].1, "text/plain; a=b&c");
    }
}
