"""Settings: one object built at start-up from env ``TOPICS_*`` and an optional ``topics.toml``.

Nested fields use ``__``: ``TOPICS_MODEL__ARCH=ViT-B-16``, ``TOPICS_STORE__URL=http://qdrant:6333``.
No instance is created at import time; call :func:`load_settings` and pass the result down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

View = Literal["image", "text", "caption"]
VectorDatatype = Literal["float32", "float16"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]  # CLIP's number format (indexer.embed.device)


class ModelSettings(BaseModel):
    """Which CLIP model embeds images and texts, and where its weights come from."""

    arch: str = "ViT-B-32"
    pretrained: str = "laion2b_s34b_b79k"  # open_clip tag, "none" for random weights (smoke tests only)
    checkpoint: Path | None = None  # a local checkpoint file; wins over `pretrained`
    config_file: Path | None = None  # a JSON architecture config for a custom/tiny model
    cache_dir: Path | None = None
    sentence_model: str | None = None  # sentence-transformers model id or path for the `caption` view
    load_timeout_s: float = 15.0
    # CLIP's number format: auto = fp16 on a GPU, bf16 on a CPU with native bf16 instructions (half
    # the time of fp32; vectors within cosine 0.9999 of it), else fp32 (indexer.embed.device)
    precision: Precision = "auto"


MIN_FREE_MB = 128  # the embedded engine's files are memory-mapped: a full disk would kill, not fail


class CollectionTuning(BaseModel, frozen=True):
    """How a collection is laid out for scale (docs/scaling.md). The embedded store reads only
    ``vector_datatype``; qdrant-client's local mode reads none of it.

    None leaves the server's default. ``int8``: scalar quantization kept in RAM, the full vectors
    (on disk when ``on_disk_vectors``) rescore the candidates.
    """

    on_disk_vectors: bool = False
    # How new collections store each vector element. float16 halves the vectors' disk and memory
    # (cosine error < 1e-3, docs/scaling.md); a collection keeps the type it was created with.
    vector_datatype: VectorDatatype = "float16"
    quantization: Literal["none", "int8"] = "none"
    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None


class StoreSettings(CollectionTuning, frozen=False):
    """Where vectors live: the embedded engine under the data dir, or a Qdrant server.

    The `CollectionTuning` fields it inherits lay out collections on a server.
    """

    backend: Literal["edge", "qdrant", "memory"] = "edge"
    url: str | None = None  # Qdrant server URL; selects the server backend when set
    api_key: SecretStr | None = None
    prefix: str = "topics"  # collection name prefix on a server
    min_free_mb: int = Field(MIN_FREE_MB, ge=0)  # embedded store: writes are refused below this free
    timeout_s: float = 30.0
    ca_cert: Path | None = None  # verify the server's TLS certificate against this CA bundle

    @property
    def kind(self) -> str:
        return "qdrant" if self.url else self.backend


class IngestSettings(BaseModel):
    batch_size: int = Field(32, ge=1)
    decode_workers: int = Field(0, ge=0)  # 0 = cores, at most 8
    flush_interval_s: float = Field(2.0, ge=0)  # store flushes (and ledger commits) at most this often
    max_image_pixels: int = Field(89_478_485, ge=1)  # Pillow's own bomb limit
    max_caption_bytes: int = Field(1_000_000, ge=1)
    views: tuple[View, ...] = ("image", "text")
    allowed_roots: tuple[Path, ...] = ()  # manifest paths must resolve inside these (and the manifest's dir)
    caption_columns: tuple[str, ...] = ()  # manifest columns joined, in order, into the caption


class FetchSettings(BaseModel):
    """Remote images and HTTP feeds: every guard a hostile URL needs."""

    timeout_s: float = Field(10.0, gt=0)
    max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    retries: int = Field(2, ge=0)
    allow_private: bool = False  # private, loopback and link-local addresses are refused by default
    allow_networks: tuple[str, ...] = ()  # CIDRs allowed even so (a local feed server)
    retry_interval_s: float = Field(3600.0, ge=0)  # serve fetches pictures it could not fetch; 0: never


class WatchSettings(BaseModel):
    settle_s: float = Field(1.0, ge=0)  # a file is ingested once unchanged this long
    sidecar_grace_s: float = Field(2.0, ge=0)  # an image waits this long for its caption
    max_queue: int = Field(10_000, ge=1)
    polling: bool = False  # for network filesystems, where inotify sees nothing
    feed_interval_s: float = Field(300.0, gt=0)  # HTTP feeds are polled this often


class ClusterSettings(BaseModel):
    view: Literal["fused", "image", "text", "caption"] = "fused"
    sample_size: int = Field(50_000, ge=100)
    min_cluster_size: int | None = None  # None: scales with the corpus
    min_samples: int | None = None
    reduce_dim: int | None = Field(None, ge=2)  # None: cluster the full vectors (measured best)
    method: Literal["leiden", "hdbscan"] = "leiden"  # kNN graph + Leiden, or PCA + HDBSCAN
    resolution: float = Field(2.0, gt=0)  # topics: Leiden resolution; higher gives more, smaller topics
    merge_threshold: float = Field(0.55, ge=0)  # higher: fewer merges (topics.fit.communities); 0: none
    split_resolution: float = Field(16.0, ge=0)  # finer communities that may split a topic; 0: no splits
    split_separation: float = Field(6.0, gt=0)  # ...when they lie this many member spreads apart
    n_neighbors: int = Field(15, ge=2)
    theme_join_cosine: float = Field(0.5, ge=-1, le=1)  # higher: fewer themes joined by their centroids
    theme_resolution: float = Field(4.0, gt=0)  # themes: higher gives more, narrower ones (topics.fit.themes)
    outlier_threshold: float | None = None
    seed: int = 0
    cron: str = "0 3 * * *"  # the nightly recluster of `topics serve`; "off": none scheduled
    online_interval_s: float = Field(10.0, gt=0)  # how often serve assigns pending items

    @property
    def scheduled(self) -> bool:
        """Whether `topics serve` reclusters on a schedule (`cron` "off", "none" or "" turns it off)."""
        return self.cron.strip().lower() not in {"", "off", "none"}


class RepresentSettings(BaseModel):
    """How topics are shown: words, exemplars, keywords, generated captions, tiles."""

    n_words: int = Field(10, ge=1)
    n_exemplars: int = Field(9, ge=1)
    n_keywords: int = Field(10, ge=0)
    diversity: float = Field(0.3, ge=0, le=1)
    pool_size: int = Field(100, ge=1)
    min_df: int = Field(2, ge=1)
    stop_words: tuple[str, ...] = ()
    stop_word_files: tuple[Path, ...] = ()
    vocabulary_file: Path | None = None  # extra keyword terms, one a line
    max_vocabulary: int = Field(20_000, ge=0)
    vocabulary_budget: int = Field(1_000, ge=0)  # new keyword terms embedded per run (the rest: later runs)
    captioner_model: str | None = None  # image-to-text model (hub id or path) for image-only topics
    tile_cell: int = Field(256, ge=16)


class WebSettings(BaseModel):
    """The web interface `topics serve` runs (web/): where it listens and what it keeps."""

    enabled: bool = True
    host: str = "127.0.0.1"  # loopback; any other address needs a token (printed at start, or `token`)
    port: int = Field(8765, ge=0, le=65535)  # 0: any free port (the URL printed says which)
    token: SecretStr | None = None  # for a non-loopback bind; None: a new one each start
    thumb_cache_mb: int = Field(256, ge=1)  # thumbnails under DATA_DIR/thumbs/, oldest evicted past this
    thumb_side: int = Field(256, ge=32, le=1024)
    max_upload_mb: float = Field(20.0, gt=0)  # a search image larger than this is refused (413)


class Settings(BaseSettings):
    """All configuration of one `topics` process."""

    model_config = SettingsConfigDict(
        env_prefix="TOPICS_", env_nested_delimiter="__", toml_file="topics.toml", extra="ignore"
    )

    data_dir: Path = Path("./data")
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps
    model: ModelSettings = ModelSettings()
    store: StoreSettings = StoreSettings()
    ingest: IngestSettings = IngestSettings()
    fetch: FetchSettings = FetchSettings()
    watch: WatchSettings = WatchSettings()
    cluster: ClusterSettings = ClusterSettings()
    represent: RepresentSettings = RepresentSettings()
    web: WebSettings = WebSettings()

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("TOPICS_CONFIG", "topics.toml"))
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        return init_settings, env_settings, toml, file_secret_settings

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment and ``topics.toml`` (or ``$TOPICS_CONFIG``), then overrides."""
    return Settings(**overrides)
