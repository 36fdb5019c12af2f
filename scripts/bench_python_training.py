#!/usr/bin/env python3
"""The PyTorch peer of `mimic-train bench`: training images/s of the same ViT shape.

Both stages on synthetic inputs, as `mimic-train bench` measures them:
- pretrain: MAE step (75 % of the patches masked, the encoder on the visible tokens,
  a decoder of width 128 and depth 2 with mask tokens, MSE on the masked patches),
  AdamW; batch 128;
- finetune: ViT forward, cross-entropy + a SupCon-style loss on a projection head
  (dim -> dim -> 128, temperature 0.1), backward, AdamW; batch 64.

Run with the reference env (scripts/setup_python_reference.sh):
    /work/pyref/bin/python scripts/bench_python_training.py --preset micro --threads 2
and on a GPU (scripts/gpu_train.sh bench runs both peers on a lent card):
    python3 scripts/bench_python_training.py --device cuda --pretrain-batch 256 --finetune-batch 256
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import Block, VisionTransformer

PRESETS = {  # image, patch, dim, depth, heads: training/README.md's table
    "micro": (48, 8, 192, 6, 3),
    "mini": (48, 6, 192, 8, 3),
    "mini64": (64, 8, 192, 8, 3),
    "tiny": (224, 16, 192, 12, 3),
    "small": (224, 16, 384, 12, 6),
    "small112": (112, 8, 384, 12, 6),
}


def vit(preset, classes=8):
    size, patch, dim, depth, heads = PRESETS[preset]
    return VisionTransformer(img_size=size, patch_size=patch, embed_dim=dim, depth=depth,
                             num_heads=heads, num_classes=classes, global_pool="avg")


class Mae(nn.Module):
    def __init__(self, preset, mask_ratio=0.75, dec_dim=128, dec_depth=2, dec_heads=4):
        super().__init__()
        self.enc = vit(preset, classes=0)
        size, patch, dim, _, _ = PRESETS[preset]
        self.n = (size // patch) ** 2
        self.patch = patch
        self.mask_ratio = mask_ratio
        self.dec_embed = nn.Linear(dim, dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
        self.dec_pos = nn.Parameter(torch.zeros(1, self.n + 1, dec_dim), requires_grad=False)
        self.dec = nn.Sequential(*[Block(dec_dim, dec_heads) for _ in range(dec_depth)])
        self.dec_norm = nn.LayerNorm(dec_dim)
        self.pred = nn.Linear(dec_dim, patch * patch * 3)

    def forward(self, img):
        b = img.shape[0]
        x = self.enc.patch_embed(img) + self.enc.pos_embed[:, 1:]
        keep = int(self.n * (1 - self.mask_ratio))
        order = torch.rand(b, self.n, device=img.device).argsort(1)
        restore = order.argsort(1)
        x = torch.gather(x, 1, order[:, :keep, None].expand(-1, -1, x.shape[2]))
        cls = (self.enc.cls_token + self.enc.pos_embed[:, :1]).expand(b, -1, -1)
        x = self.enc.norm(self.enc.blocks(torch.cat([cls, x], 1)))
        x = self.dec_embed(x)
        masks = self.mask_token.expand(b, self.n - keep, -1)
        y = torch.cat([x[:, 1:], masks], 1)
        y = torch.gather(y, 1, restore[:, :, None].expand(-1, -1, y.shape[2]))
        y = torch.cat([x[:, :1], y], 1) + self.dec_pos
        y = self.pred(self.dec_norm(self.dec(y)))[:, 1:]
        p = self.patch
        target = img.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(b, self.n, -1)
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
        masked = torch.zeros(b, self.n, device=img.device)
        masked[:, keep:] = 1
        masked = torch.gather(masked, 1, restore)
        return (((y - target) ** 2).mean(-1) * masked).sum() / masked.sum()


class Finetune(nn.Module):
    def __init__(self, preset, proj=128, tau=0.1):
        super().__init__()
        self.vit = vit(preset)
        dim = PRESETS[preset][2]
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, proj))
        self.tau = tau

    def forward(self, img, y):
        feat = self.vit.forward_head(self.vit.forward_features(img), pre_logits=True)
        ce = F.cross_entropy(self.vit.head(feat), y)
        z = F.normalize(self.head(feat), dim=1)
        sim = z @ z.t() / self.tau
        eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
        logp = sim.masked_fill(eye, -1e9).log_softmax(1)
        pos = (y[:, None] == y[None, :]) & ~eye
        supcon = -(logp * pos).sum(1) / pos.sum(1).clamp(min=1)
        return ce + 0.1 * supcon.mean()


def bench(step, seconds, sync):
    for _ in range(3):
        step()
    sync()
    steps, t0 = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - t0 < seconds:
        step()
        steps += 1
    sync()
    return steps, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="micro", choices=sorted(PRESETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--pretrain-batch", type=int, default=128)
    ap.add_argument("--finetune-batch", type=int, default=64)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"],
                    help="bf16: the forward pass under torch.autocast (weights and optimizer in fp32)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    size = PRESETS[args.preset][0]
    where = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"torch {torch.__version__}, {where}, preset {args.preset}, {args.dtype}")
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    mae = Mae(args.preset).to(dev)
    opt = torch.optim.AdamW(mae.parameters(), lr=1e-4)
    img = torch.randn(args.pretrain_batch, 3, size, size, device=dev)

    def pretrain_step():
        opt.zero_grad()
        with autocast:
            loss = mae(img)
        loss.backward()
        opt.step()

    steps, secs = bench(pretrain_step, args.seconds, sync)
    print(f"pretrain  batch {args.pretrain_batch:>4} {args.dtype}: {steps * args.pretrain_batch / secs:8.1f} images/s ({steps} steps)")

    ft = Finetune(args.preset).to(dev)
    opt2 = torch.optim.AdamW(ft.parameters(), lr=1e-4)
    img = torch.randn(args.finetune_batch, 3, size, size, device=dev)
    y = torch.randint(0, 8, (args.finetune_batch,), device=dev)

    def finetune_step():
        opt2.zero_grad()
        with autocast:
            loss = ft(img, y)
        loss.backward()
        opt2.step()

    steps, secs = bench(finetune_step, args.seconds, sync)
    print(f"finetune  batch {args.finetune_batch:>4} {args.dtype}: {steps * args.finetune_batch / secs:8.1f} images/s ({steps} steps)")


if __name__ == "__main__":
    main()
