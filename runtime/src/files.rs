//! HTTP responses for files of the served tree and images: GET/HEAD, ETag, Range.
