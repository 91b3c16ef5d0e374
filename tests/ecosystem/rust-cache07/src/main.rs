//! flame-rs 0.7.0's object cache client against flame-object-cache:
//!   flame07-cache FLIGHT_KEY
//! with ~/.flame/flame.yaml naming the cache (flame-rs's put_object reads
//! the file). Puts, patches, gets and deletes through flame-rs's
//! own functions, reads FLIGHT_KEY (an object pyarrow.flight put, base
//! "from flight" and one patch "+flight"), and leaves one object for the
//! caller to read through Flight: it prints `KEEP <key> <version>`, and an
//! application package (upload_package, what a Flame 0.7 user deploys with)
//! the grpc:// installer reads through Flight: `PKG <key> <size>`. One line
//! per step; exits non-zero with the reason on the first failure.
use bytes::Bytes;
use flame_rs::apis::{FlameContext, FlameError};
use flame_rs::{
    delete_objects, get_object, patch_object, put_object, upload_package, FlameMessage, ObjectRef,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Opaque bytes, as written (flame-rs stores a FlameMessage's encoding, type "raw").
struct Raw(Bytes);

impl FlameMessage for Raw {
    fn encode(&self) -> Result<Bytes, FlameError> {
        Ok(self.0.clone())
    }
    fn decode(bytes: &[u8]) -> Result<Self, FlameError> {
        Ok(Raw(Bytes::copy_from_slice(bytes)))
    }
}

/// Every data part of an object, the first being its base.
struct Parts(Vec<Bytes>);

impl TryFrom<Vec<Bytes>> for Parts {
    type Error = FlameError;
    fn try_from(parts: Vec<Bytes>) -> Result<Self, FlameError> {
        Ok(Parts(parts))
    }
}

fn check(ok: bool, what: String) -> Res<()> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn show(parts: &[Bytes]) -> Vec<String> {
    parts.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect()
}

#[tokio::main]
async fn main() -> Res<()> {
    let flight_key = std::env::args().nth(1).ok_or("usage: flame07-cache FLIGHT_KEY")?;

    // put, patch, get: a version is the number of parts
    let r1 = put_object("rs/ssn", &Raw(Bytes::from_static(b"from rust"))).await?;
    check(r1.version == 1 && r1.key.starts_with("rs/ssn/"), format!("put: {:?}", r1))?;
    let r2 = patch_object(&r1, &Raw(Bytes::from_static(b"+rust"))).await?;
    check(r2.version == 2 && r2.key == r1.key, format!("patch: {:?}", r2))?;
    let Parts(parts) = get_object::<Parts>(r2.clone()).await?;
    check(show(&parts) == ["from rust", "+rust"], format!("get: {:?}", show(&parts)))?;
    println!("put/patch/get ok: {} version {}", r2.key, r2.version);

    // a big object travels in 1 MiB chunks and comes back whole
    let big: Vec<u8> = (0..(3 << 20) + 7).map(|i| (i % 251) as u8).collect();
    let rb = put_object("rs/ssn", &Raw(Bytes::from(big.clone()))).await?;
    let Parts(parts) = get_object::<Parts>(rb.clone()).await?;
    check(parts.len() == 1 && parts[0] == big, "big object differs".to_string())?;
    println!("big ok: {} bytes", big.len());

    // the ObjectRef's BSON form round-trips and reads the same object
    let decoded = ObjectRef::decode(r2.encode()?)?;
    check(decoded == r2, format!("ObjectRef decode: {:?}", decoded))?;
    println!("objectref ok");

    // what pyarrow.flight put: base then patch, type "raw"
    let fr = ObjectRef::new(r1.endpoint.clone(), flight_key.clone(), 0)?;
    let Parts(parts) = get_object::<Parts>(fr).await?;
    check(show(&parts) == ["from flight", "+flight"],
          format!("flight object: {:?}", show(&parts)))?;
    println!("flight object ok: {}", flight_key);

    // delete: a full key, then what is left of the session
    delete_objects(&r1.key).await?;
    match get_object::<Parts>(r1.clone()).await {
        Err(e) => check(e.to_string().contains("not found"), format!("after delete: {}", e))?,
        Ok(_) => return Err("deleted object still there".into()),
    }
    delete_objects("rs/ssn").await?;
    check(get_object::<Parts>(rb).await.is_err(), "prefix delete left the big object".into())?;
    println!("delete ok");

    // one object for the caller to read through Flight
    let keep = put_object("rs/keep", &Raw(Bytes::from_static(b"for flight"))).await?;
    let keep = patch_object(&keep, &Raw(Bytes::from_static(b"+07"))).await?;
    println!("KEEP {} {}", keep.key, keep.version);

    // a package file (streamed from disk in 1 MiB chunks), uploaded twice:
    // upload_package deletes the old one first
    let path = std::env::temp_dir().join(format!("flame07-cache-{}.tar.gz", std::process::id()));
    let pkg: Vec<u8> = (0..(2 << 20) + 3).map(|i| (i % 241) as u8).collect();
    std::fs::write(&path, &pkg)?;
    let ctx = FlameContext::from_file_with_env(None)?;
    upload_package(&ctx, "rs", "pkg.tar.gz", &path).await?;
    let pr = upload_package(&ctx, "rs", "pkg.tar.gz", &path).await?;
    std::fs::remove_file(&path)?;
    check(pr.key == "rs/pkg/pkg.tar.gz" && pr.version == 1, format!("package: {:?}", pr))?;
    println!("PKG {} {}", pr.key, pkg.len());
    Ok(())
}
