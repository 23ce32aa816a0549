use super::*;
use crate::runtime::EngineConfig;
use prometheus::Registry;

struct Fixture {
    _dir: tempfile::TempDir,
    cache: CodeCache,
    bytes: Vec<u8>,
    sha256: String,
}

fn engine() -> Engine {
    Engine::new(&EngineConfig {
        max_instances: 4,
        max_memory_bytes: 16 << 20,
    })
    .unwrap()
}

fn counter() -> IntCounterVec {
    crate::metrics::counter(&Registry::new(), "compilations", "test", &["outcome"])
}

/// A cache in a fresh directory and the smallest test component.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cache = CodeCache::open(engine(), dir.path().join("compiled"), counter());
    let bytes = std::fs::read(mercato_test_artifacts::path("noop")).unwrap();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Fixture {
        _dir: dir,
        cache,
        bytes,
        sha256,
    }
}

impl Fixture {
    async fn load(&self) -> (Component, Source) {
        self.cache.load(&self.sha256, &self.bytes).await.unwrap()
    }

    /// Loads (compiling) and keeps the component, as a first activation does.
    async fn kept(&self) -> Component {
        let (component, source) = self.load().await;
        assert_eq!(source, Source::Compiled);
        self.cache.keep(&self.sha256, &component).await;
        component
    }

    fn path(&self) -> PathBuf {
        self.cache.path(&self.sha256)
    }

    fn count(&self, source: Source) -> u64 {
        self.cache
            .compilations
            .with_label_values(&[source.as_str()])
            .get()
    }

    /// Writes `code` where the component's file goes, sealed as `keep` seals.
    fn write_sealed(&self, code: &[u8]) {
        let mut file = code.to_vec();
        file.extend_from_slice(&seal(&self.cache.label(&self.sha256), code));
        std::fs::write(self.path(), file).unwrap();
    }

    /// Why the file would be refused now, if it would.
    fn refusal(&self) -> Option<Refused> {
        let engine = self.cache.engine.wasmtime();
        read_sealed(engine, &self.path(), &self.cache.label(&self.sha256)).err()
    }

    /// The file is refused: the component is compiled again, the file deleted
    /// until `keep` writes a sound one, which is then loaded.
    async fn refused_then_replaced(&self) {
        let compiled = self.count(Source::Compiled);
        let (component, source) = self.load().await;
        assert_eq!(source, Source::Compiled);
        assert_eq!(self.count(Source::Compiled), compiled + 1);
        assert!(!self.path().exists(), "the refused file is deleted");
        self.cache.keep(&self.sha256, &component).await;
        let (_, source) = self.load().await;
        assert_eq!(source, Source::Cached, "the rewritten file is used");
    }
}

fn exports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine.wasmtime())
        .map(|(name, _)| name.to_owned())
        .collect()
}

#[tokio::test]
async fn a_miss_compiles_and_keeping_writes_the_sealed_code() {
    let f = fixture();
    let (component, source) = f.load().await;
    assert_eq!(source, Source::Compiled);
    assert_eq!(f.count(Source::Compiled), 1);
    assert!(!f.path().exists(), "nothing is written before acceptance");

    f.cache.keep(&f.sha256, &component).await;
    let name = f.path().file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name, format!("{}-{}.cwasm", f.sha256, f.cache.key));
    let file = std::fs::read(f.path()).unwrap();
    let (code, sealed) = file.split_last_chunk::<SEAL>().unwrap();
    assert_eq!(code, component.serialize().unwrap());
    assert_eq!(*sealed, seal(&f.cache.label(&f.sha256), code));
}

#[tokio::test]
async fn a_hit_loads_the_code_without_compiling() {
    let f = fixture();
    let compiled = f.kept().await;
    let (cached, source) = f.load().await;
    assert_eq!(source, Source::Cached);
    assert_eq!(f.count(Source::Compiled), 1);
    assert_eq!(f.count(Source::Cached), 1);
    let engine = &f.cache.engine;
    assert_eq!(exports(engine, &cached), exports(engine, &compiled));
    assert!(!exports(engine, &cached).is_empty());
}

#[tokio::test]
async fn a_truncated_file_is_refused_and_replaced() {
    let f = fixture();
    f.kept().await;
    let file = std::fs::read(f.path()).unwrap();
    std::fs::write(f.path(), &file[..file.len() / 2]).unwrap();
    f.refused_then_replaced().await;
    std::fs::write(f.path(), &file[..10]).unwrap();
    f.refused_then_replaced().await;
}

#[tokio::test]
async fn a_flipped_bit_in_the_code_is_refused_by_the_seal() {
    let f = fixture();
    f.kept().await;
    let mut file = std::fs::read(f.path()).unwrap();
    let middle = file.len() / 2;
    file[middle] ^= 0x10;
    std::fs::write(f.path(), &file).unwrap();
    assert!(matches!(f.refusal(), Some(Refused::Seal)));
    f.refused_then_replaced().await;
}

#[tokio::test]
async fn garbage_is_refused_even_when_sealed() {
    let f = fixture();
    std::fs::create_dir_all(&f.cache.dir).unwrap();
    std::fs::write(f.path(), b"not compiled code at all, and no seal").unwrap();
    assert!(matches!(f.refusal(), Some(Refused::Seal)));
    f.refused_then_replaced().await;
    // A seal only proves the file is what was written: wasmtime's own check
    // still refuses what is not its code.
    f.write_sealed(b"\x7fELF but nothing wasmtime made");
    assert!(matches!(f.refusal(), Some(Refused::Incompatible(_))));
    f.refused_then_replaced().await;
    assert_eq!(f.count(Source::Cached), 2);
}

#[tokio::test]
async fn code_made_for_another_engine_config_is_refused_and_never_loaded() {
    let f = fixture();
    // The same component compiled by an engine without fuel: running its code
    // in this host would let a guest loop without ever running out.
    let mut config = wasmtime::Config::new();
    config.consume_fuel(false).epoch_interruption(true);
    let other = wasmtime::Engine::new(&config).unwrap();
    let foreign = Component::new(&other, &f.bytes)
        .unwrap()
        .serialize()
        .unwrap();
    assert_ne!(engine_key(&other), f.cache.key);
    // Put under this engine's name with a good seal: only wasmtime's check
    // of the engine settings stands between it and execution.
    std::fs::create_dir_all(&f.cache.dir).unwrap();
    f.write_sealed(&foreign);
    let refusal = f.refusal().expect("refused").to_string();
    assert!(refusal.contains("fuel"), "{refusal}");
    f.refused_then_replaced().await;
    let file = std::fs::read(f.path()).unwrap();
    assert_ne!(&file[..file.len() - SEAL], &foreign[..]);
}

#[test]
fn the_engine_key_is_stable_and_follows_the_settings() {
    let key = engine_key(engine().wasmtime());
    assert_eq!(key.len(), 16);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        key,
        engine_key(engine().wasmtime()),
        "same settings, same key"
    );
    let bigger = Engine::new(&EngineConfig {
        max_instances: 8,
        max_memory_bytes: 16 << 20,
    })
    .unwrap();
    assert_eq!(
        key,
        engine_key(bigger.wasmtime()),
        "pool size is no compile setting"
    );
    let unfueled = wasmtime::Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
    assert_ne!(key, engine_key(&unfueled));
}

#[tokio::test]
async fn opening_deletes_code_of_other_engines_and_torn_writes() {
    let f = fixture();
    f.kept().await;
    let dir = &f.cache.dir;
    let other_engine = dir.join(format!("{}-0123456789abcdef.cwasm", f.sha256));
    let torn = dir.join(format!("{}-{}.tmp-1f2e", f.sha256, f.cache.key));
    let unrelated = dir.join("README");
    for path in [&other_engine, &torn, &unrelated] {
        std::fs::write(path, b"x").unwrap();
    }
    let reopened = CodeCache::open(engine(), dir.clone(), counter());
    assert!(!other_engine.exists() && !torn.exists());
    assert!(unrelated.exists(), "only the cache's own files are deleted");
    let (_, source) = reopened.load(&f.sha256, &f.bytes).await.unwrap();
    assert_eq!(source, Source::Cached, "the current engine's code stays");
}
