"""Reference for the retrieval fine-tuning losses (written from their definitions, autograd in float64).

usage: contrastive_ref.py IN.safetensors OUT.safetensors

IN holds  hidden [T, H] F32, cu_seqlens [B+1] I64, target [Bq] I64, exclude [Bq, Bd] I64,
          proj [Dc, H] F32 (colbert only); metadata: mode = embedding-mean | embedding-cls | colbert,
          temperature, num_queries.
OUT holds loss [1], dhidden [T, H], dproj [Dc, H] (colbert) as F64.

  embedding: pooled_k = mean (or first) of sequence k's rows; s_ij = cos(q_i, d_j) / τ
  colbert:   p_t = normalize(proj · h_t); s_ij = Σ_{t∈q_i} max_{k∈d_j} <p_t, p_k> / τ
  loss = mean_i CE(s_i with excluded entries removed, target_i)
"""
import sys

import torch
import torch.nn.functional as F

import safetensors_io as st


def main():
    t, meta = st.load(sys.argv[1])
    mode = meta["mode"]
    tau = float(meta["temperature"])
    Bq = int(meta["num_queries"])
    h = t["hidden"].double().requires_grad_(True)
    cu = t["cu_seqlens"].tolist()
    B = len(cu) - 1
    target = t["target"].long()
    exclude = t["exclude"].bool()
    proj = t["proj"].double().requires_grad_(True) if mode == "colbert" else None
    if mode.startswith("embedding"):
        if mode == "embedding-cls":
            pooled = torch.stack([h[cu[k]] for k in range(B)])
        else:
            pooled = torch.stack([h[cu[k]:cu[k + 1]].mean(0) for k in range(B)])
        q = F.normalize(pooled[:Bq], dim=-1)
        d = F.normalize(pooled[Bq:], dim=-1)
        s = q @ d.T
    else:
        p = F.normalize(h @ proj.T, dim=-1)
        rows = []
        for i in range(Bq):
            qi = p[cu[i]:cu[i + 1]]
            rows.append(torch.stack([(qi @ p[cu[j]:cu[j + 1]].T).max(dim=1).values.sum() for j in range(Bq, B)]))
        s = torch.stack(rows)
    s = (s / tau).masked_fill(exclude, float("-inf"))
    loss = F.cross_entropy(s, target)
    loss.backward()
    out = {"loss": loss.detach().reshape(1), "dhidden": h.grad}
    if proj is not None:
        out["dproj"] = proj.grad
    st.save(out, sys.argv[2])


if __name__ == "__main__":
    main()
