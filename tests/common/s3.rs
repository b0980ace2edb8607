//! The throwaway S3 with STS of `tests/lib/s3.sh` (SeaweedFS), as tests reach it.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};

/// The throwaway S3 of `tests/lib/s3.sh`.
pub struct S3Env {
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub role_arn: String,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with ./tests/run.sh, which starts a throwaway S3 with STS (SeaweedFS, tests/lib/s3.sh)"
        )
    })
}

pub fn s3_env() -> S3Env {
    S3Env {
        endpoint: env("SERAC_TEST_S3_ENDPOINT"),
        bucket: env("SERAC_TEST_S3_BUCKET"),
        access_key_id: env("SERAC_TEST_S3_ACCESS_KEY_ID"),
        secret_access_key: env("SERAC_TEST_S3_SECRET_ACCESS_KEY"),
        role_arn: env("SERAC_TEST_S3_ROLE_ARN"),
    }
}

impl S3Env {
    /// A storage profile for this store in `mode`.
    pub fn profile(&self, mode: &str) -> Value {
        let mut profile = json!({
            "type": "s3", "endpoint": self.endpoint, "region": "us-east-1",
            "path-style-access": true, "access-key-id": self.access_key_id,
            "secret-access-key": self.secret_access_key, "credential-mode": mode,
        });
        if mode == "vended" {
            profile["sts"] = json!({"role-arn": self.role_arn, "session-duration": "15m"});
        }
        profile
    }

    /// A client with the catalog identity's keys (what Serac itself holds).
    pub fn catalog_client(&self) -> aws_sdk_s3::Client {
        self.client(&self.access_key_id, &self.secret_access_key, None)
    }

    pub fn client(&self, key: &str, secret: &str, token: Option<&str>) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .http_client(serac::storage::s3::http_client())
            .credentials_provider(Credentials::new(
                key,
                secret,
                token.map(str::to_owned),
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A client with the keys of a load result's `storage-credentials` entry.
    pub fn client_of(&self, entry: &Value) -> aws_sdk_s3::Client {
        let config = &entry["config"];
        self.client(
            config["s3.access-key-id"].as_str().expect("access key"),
            config["s3.secret-access-key"].as_str().expect("secret key"),
            config["s3.session-token"].as_str(),
        )
    }

    /// The keys below `prefix` (a location's path in the bucket), as the catalog sees them.
    pub async fn keys_below(&self, prefix: &str) -> Vec<String> {
        let out = self
            .catalog_client()
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{prefix}/"))
            .send()
            .await
            .expect("listing as the catalog identity");
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }
}

/// The key of an `s3://bucket/key` location.
pub fn key_of(location: &str) -> String {
    let rest = location
        .split_once("://")
        .expect("a URL")
        .1
        .split_once('/')
        .expect("a key")
        .1;
    rest.to_owned()
}
