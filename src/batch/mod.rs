//! Batch analysis across processes and machines: one output file per input in a
//! folder, a manifest that makes a run resumable, deterministic shards of the input
//! list, and the merge of a folder's outputs into one table.
//!
//! | file | what |
//! |---|---|
//! | `names.rs` | the output file name of each input, unique over the whole input list |
//! | `shard.rs` | `--shard K/N`: a stable partition of the inputs by a hash of each path |
//! | `manifest.rs` | `manifest.jsonl`: what each finished input produced, checked on `--resume` |
//! | `merge.rs` | `mimic merge`: the outputs in input order, every frame exactly once |

mod manifest;
mod merge;
mod names;
mod shard;

pub use manifest::{
    InputStatus, Manifest, ManifestEntry, ManifestError, file_sha256, manifest_file_name,
};
pub use merge::{MergeError, MergeReport, merge_outputs};
pub use names::output_names;
pub use shard::{Shard, ShardError};
