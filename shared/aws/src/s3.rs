//! [`S3Objects`]: the bill bucket ([`domain::ports::ObjectStore`]). Bills are copied to a
//! local file chunk by chunk (a ZIP is read from its end, so it needs a seekable file; memory
//! stays at one chunk whatever the bill's size), hashing as they go.

use crate::error::describe;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use domain::ports::{ObjectError, ObjectStore, StoredObject};
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    bucket: String,
}

impl S3Objects {
    pub fn new(client: Client, bucket: impl Into<String>) -> S3Objects {
        S3Objects {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket if it does not exist (tests and the local stack).
    pub async fn ensure_bucket(&self) -> Result<(), ObjectError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ObjectError(format!("create bucket {}: {}", self.bucket, describe(&e))))
    }

    /// Every key under `prefix`, with its ETag (the local stack's S3 event delivery).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, ObjectError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| ObjectError(format!("list {prefix}: {}", describe(&e))))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    keys.push((
                        key.to_owned(),
                        object.e_tag().unwrap_or_default().to_owned(),
                    ));
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated().unwrap_or(false) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(keys)
    }
}

impl ObjectStore for S3Objects {
    async fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(ObjectError(format!("head {key}: {}", describe(&e)))),
        }
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        metadata: &[(&str, String)],
    ) -> Result<(), ObjectError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        for (name, value) in metadata {
            request = request.metadata(*name, value);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ObjectError(format!("put {key}: {}", describe(&e))))
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object
                .body
                .collect()
                .await
                .map(|data| Some(data.into_bytes().to_vec()))
                .map_err(|e| ObjectError(format!("read {key}: {e}"))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(ObjectError(format!("get {key}: {}", describe(&e)))),
        }
    }

    async fn download(&self, key: &str, into: &Path) -> Result<StoredObject, ObjectError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| ObjectError(format!("get {key}: {}", describe(&e))))?;
        let failed = |e: std::io::Error| ObjectError(format!("write {key} locally: {e}"));
        let mut file = tokio::fs::File::create(into).await.map_err(failed)?;
        let mut body = object.body;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| ObjectError(format!("read {key}: {e}")))?
        {
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(failed)?;
        }
        file.flush().await.map_err(failed)?;
        Ok(StoredObject {
            bytes,
            sha256: hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        })
    }
}
