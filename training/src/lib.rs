//! mimic-train: MIMIC pre-training and mix-supervised contrastive fine-tuning of
//! the expression ViT, and the dataset readers they train on.
//!
//! | module | what |
//! |---|---|
//! | [`data`] | dataset readers (FER+, RAF-DB, AffectNet, FER2013, ImageFolder, unlabelled images) |
//! | [`images`] | images in memory, crop / flip / jitter / erase, rendering to network input |
//! | [`mae`] | masked-autoencoder model, masking, per-patch normalised loss |
//! | [`mae_package`] | shipped MAE packages (`models/mae-…`) that fine-tuning starts from and pre-training continues |
//! | [`mix`] | mixup / cutmix and mixed class distributions |
//! | [`mix_supcon`] | soft cross-entropy and the mix-supervised contrastive loss |
//! | [`balance`], [`distill`] | class-prior correction of the cross-entropy, knowledge distillation |
//! | [`data_parallel`] | one batch split over the devices of one machine (`--replicas`) |
//! | [`schedule`], [`optim`] | warm-up + cosine, layer-wise decay, AdamW groups, gradient clipping |
//! | [`run`], [`control`] | run folder, resumable checkpoints, prefetching, progress |
//! | [`pretrain`], [`finetune`], [`eval`], [`export`], [`bench`] | the subcommands |

pub mod balance;
pub mod bench;
pub mod control;
pub mod data;
pub mod data_parallel;
pub mod device;
pub mod distill;
pub mod eval;
pub mod export;
pub mod finetune;
pub mod images;
pub mod mae;
pub mod mae_package;
pub mod metrics;
pub mod mix;
pub mod mix_supcon;
pub mod optim;
pub mod plot;
pub mod pretrain;
pub mod run;
pub mod schedule;
