# Golden values for the parity tests of amisim's self-supervised losses
# (tests/integration/ssl_parity.rs reads tests/data/ssl_parity.json):
#
#   python bench/ssl_parity.py > tests/data/ssl_parity.json
#
# Each loss below follows its official implementation line by line, written here from a
# reading of (file @ commit):
#   VICReg  facebookresearch/vicreg      main_vicreg.py, VICReg.forward, off_diagonal
#                                        @ 4e12602fd495af83efd1631fbe82523e6db092e0
#   SimCLR  google-research/simclr       tf2/objective.py, add_contrastive_loss (TensorFlow;
#                                        rewritten in PyTorch, strategy=None)
#                                        @ 383d4143fd8cf7879ae10f1046a9baeb753ff438
#   BYOL    lucidrains/byol-pytorch      byol_pytorch/byol_pytorch.py, cosine_loss_fn and
#                                        BYOL.forward's symmetrised loss
#                                        @ 299312613c1f44923e7869d1c82be7d536c2c42b
#   MAE     facebookresearch/mae         models_mae.py, patchify and forward_loss
#                                        (norm_pix_loss False and True)
#                                        @ efb2a8062c206524e35e47d04501ed4f544c0ae8
#   I-JEPA  facebookresearch/ijepa       src/masks/utils.py apply_masks; src/train.py
#                                        forward_target (layer_norm, apply_masks,
#                                        repeat_interleave_batch) and loss_fn (smooth L1)
#                                        @ 52c1ae95d05f743e000e8f10a1f3a79b10cff048
#   V-JEPA  facebookresearch/jepa        app/vjepa/train.py forward_target and loss_fn
#                                        (loss_exp 1.0, reg_coeff 0.0 as in
#                                        configs/pretrain/vitl16.yaml)
#                                        @ 51c59d518fc63c08464af6de585f78ac0c7ed4d5
#   BatchNorm1d (training mode) of the projection heads: torch.nn.functional.batch_norm
#   SIGReg  rbalestr-lab/lejepa          lejepa/univariate/epps_pulley.py EppsPulley
#                                        (t_max 3, 17 points, trapezoid); MINIMAL.md SIGReg
#                                        (per view, slices normalised) and the LeJEPA loss
#                                        sigreg * lamb + inv * (1 - lamb)
#                                        @ eddffdd857a19726342ef6526e01021fb3c32cae
#
# Inputs are float32 draws of torch.manual_seed(0) (so the Rust side reads them exactly);
# losses and gradients are computed in float64 from those values. Every gradient is of the
# loss with respect to the named inputs, as autograd gives it.
import json
import torch
import torch.nn.functional as F

torch.manual_seed(0)


def draw(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=torch.float32) * scale).to(torch.float64)


def out(t, digits=17):
    # Inputs are float32 values: 9 significant digits give them back exactly.
    return {"shape": list(t.shape), "data": [float(f"{v:.{digits}g}") for v in t.detach().flatten().tolist()]}


cases = []


def case(name, params, inputs, loss_fn, grad_of):
    leaves = {k: v.clone().requires_grad_(k in grad_of) for k, v in inputs.items()}
    loss = loss_fn(**leaves)
    loss.backward()
    cases.append({
        "name": name,
        "params": params,
        "inputs": {k: out(v, 9) for k, v in inputs.items()},
        "loss": float(loss.detach()),
        "grads": {k: out(leaves[k].grad) for k in grad_of},
    })


# ---- VICReg (main_vicreg.py) ----
def off_diagonal(x):
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg(x, y, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    batch_size, num_features = x.shape
    repr_loss = F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + 0.0001)
    std_y = torch.sqrt(y.var(dim=0) + 0.0001)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    cov_x = (x.T @ x) / (batch_size - 1)
    cov_y = (y.T @ y) / (batch_size - 1)
    cov_loss = off_diagonal(cov_x).pow(2).sum().div(num_features) + off_diagonal(cov_y).pow(2).sum().div(
        num_features
    )
    return sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss


# Scale 0.5: some dimensions' std below 1, so the variance hinge is active.
x, y = draw(8, 16, scale=0.5), draw(8, 16, scale=0.5)
case("vicreg", {"sim": 25.0, "std": 25.0, "cov": 1.0}, {"x": x, "y": y}, vicreg, ["x", "y"])


# ---- SimCLR (tf2/objective.py add_contrastive_loss, hidden_norm=True, strategy=None) ----
LARGE_NUM = 1e9


def simclr(h1, h2, temperature):
    hidden = torch.cat([h1, h2], 0)
    # tf.math.l2_normalize: x / sqrt(max(sum(x^2), 1e-12))
    hidden = hidden / torch.sqrt(torch.clamp(hidden.pow(2).sum(-1, keepdim=True), min=1e-12))
    hidden1, hidden2 = torch.split(hidden, hidden.shape[0] // 2, 0)
    batch_size = hidden1.shape[0]
    labels = F.one_hot(torch.arange(batch_size), batch_size * 2).to(hidden.dtype)
    masks = F.one_hot(torch.arange(batch_size), batch_size).to(hidden.dtype)
    logits_aa = hidden1 @ hidden1.T / temperature - masks * LARGE_NUM
    logits_bb = hidden2 @ hidden2.T / temperature - masks * LARGE_NUM
    logits_ab = hidden1 @ hidden2.T / temperature
    logits_ba = hidden2 @ hidden1.T / temperature
    # tf.nn.softmax_cross_entropy_with_logits(labels, logits), per row
    loss_a = -(labels * F.log_softmax(torch.cat([logits_ab, logits_aa], 1), 1)).sum(1)
    loss_b = -(labels * F.log_softmax(torch.cat([logits_ba, logits_bb], 1), 1)).sum(1)
    return torch.mean(loss_a + loss_b)


for tau in (0.1, 0.5):
    h1, h2 = draw(8, 16), draw(8, 16)
    case(f"simclr_t{tau}", {"temperature": tau}, {"h1": h1, "h2": h2},
         lambda h1, h2, tau=tau: simclr(h1, h2, tau), ["h1", "h2"])


# ---- BYOL (byol_pytorch.py cosine_loss_fn, BYOL.forward) ----
def cosine_loss_fn(x, y):
    x = F.normalize(x, dim=-1, p=2)
    y = F.normalize(y, dim=-1, p=2)
    return 2 - 2 * (x * y).sum(dim=-1)


def byol(p1, p2, z1, z2):
    loss_one = cosine_loss_fn(p1, z2.detach())
    loss_two = cosine_loss_fn(p2, z1.detach())
    loss = loss_one + loss_two
    return loss.mean()


p1, p2, z1, z2 = draw(8, 16), draw(8, 16), draw(8, 16), draw(8, 16)
case("byol", {}, {"p1": p1, "p2": p2, "z1": z1, "z2": z2}, byol, ["p1", "p2"])


# ---- MAE (models_mae.py patchify, forward_loss) ----
def patchify(imgs, p):
    c = imgs.shape[1]
    assert imgs.shape[2] == imgs.shape[3] and imgs.shape[2] % p == 0
    h = w = imgs.shape[2] // p
    x = imgs.reshape(shape=(imgs.shape[0], c, h, p, w, p))
    x = torch.einsum("nchpwq->nhwpqc", x)
    x = x.reshape(shape=(imgs.shape[0], h * w, p**2 * c))
    return x


def mae(imgs, pred, mask, p, norm_pix_loss):
    target = patchify(imgs, p)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    loss = (pred - target) ** 2
    loss = loss.mean(dim=-1)
    loss = (loss * mask).sum() / mask.sum()
    return loss


imgs = draw(2, 3, 16, 16)
pred = draw(2, 16, 48)
# 12 of 16 patches removed (1) per image, as MAE's random_masking at 75 %.
mask = torch.zeros(2, 16, dtype=torch.float64)
for i, keep in enumerate(([0, 5, 10, 15], [1, 2, 12, 7])):
    mask[i] = 1.0
    mask[i, keep] = 0.0
for norm in (False, True):
    case(f"mae_norm{int(norm)}", {"patch": 4, "norm_pix_loss": norm}, {"imgs": imgs, "pred": pred, "mask": mask},
         lambda imgs, pred, mask, norm=norm: mae(imgs, pred, mask, 4, norm), ["pred"])


# ---- I-JEPA (src/masks/utils.py apply_masks, src/train.py forward_target + loss_fn) ----
def apply_masks(x, masks, concat=True):
    all_x = []
    for m in masks:
        mask_keep = m.unsqueeze(-1).repeat(1, 1, x.size(-1))
        all_x += [torch.gather(x, dim=1, index=mask_keep)]
    if not concat:
        return all_x
    return torch.cat(all_x, dim=0)


def repeat_interleave_batch(x, B, repeat):
    N = len(x) // B
    x = torch.cat([torch.cat([x[i * B:(i + 1) * B] for _ in range(repeat)], dim=0) for i in range(N)], dim=0)
    return x


# Two images, 16 tokens of width 8; two target blocks of 4 tokens each (masks_pred), one
# context mask (masks_enc), as I-JEPA's collator gives them (a list per block of [B, K]).
masks_pred = [torch.tensor([[0, 1, 4, 5], [10, 11, 14, 15]]), torch.tensor([[2, 3, 6, 7], [8, 9, 12, 13]])]
h_raw = draw(2, 16, 8, scale=2.0)
z = draw(4, 4, 8)


def ijepa(h, z):
    with torch.no_grad():
        h = F.layer_norm(h, (h.size(-1),))
        B = len(h)
        h = apply_masks(h, masks_pred)
        h = repeat_interleave_batch(h, B, repeat=1)
    return F.smooth_l1_loss(z, h)


masks_json = [m.tolist() for m in masks_pred]
case("ijepa", {"masks_pred": masks_json}, {"h": h_raw, "z": z}, ijepa, ["z"])


# ---- V-JEPA (app/vjepa/train.py forward_target, loss_fn; loss_exp 1) ----
def vjepa(h, z, loss_exp=1.0):
    with torch.no_grad():
        h = F.layer_norm(h, (h.size(-1),))
        h = apply_masks(h, masks_pred, concat=False)
    z = list(torch.split(z, z.shape[0] // len(masks_pred), 0))
    loss = 0.0
    for zi, hi in zip(z, h):
        loss += torch.mean(torch.abs(zi - hi) ** loss_exp) / loss_exp
    loss /= len(masks_pred)
    return loss


case("vjepa", {"masks_pred": masks_json}, {"h": h_raw, "z": z}, vjepa, ["z"])


# ---- SIGReg / LeJEPA (epps_pulley.py, MINIMAL.md) ----
def sigreg(proj, A, knots=17):
    t = torch.linspace(0, 3, knots, dtype=torch.float64)
    dt = 3 / (knots - 1)
    weights = torch.full((knots,), 2 * dt, dtype=torch.float64)
    weights[[0, -1]] = dt
    window = torch.exp(-t.square() / 2.0)
    weights = weights * window
    A = A / A.norm(p=2, dim=0)
    x_t = (proj @ A).unsqueeze(-1) * t
    err = (x_t.cos().mean(-3) - window).square() + x_t.sin().mean(-3).square()
    statistic = (err @ weights) * proj.size(-2)
    return statistic.mean()


def lejepa(proj, A, lamb):
    inv_loss = (proj.mean(0) - proj).square().mean()
    return sigreg(proj, A) * lamb + inv_loss * (1 - lamb)


proj = draw(2, 8, 16)  # [views, samples, dims]
A = draw(16, 32)  # 32 slices
case("sigreg", {"lamb": 1.0}, {"proj": proj, "A": A}, lambda proj, A: sigreg(proj, A), ["proj"])
case("lejepa", {"lamb": 0.05}, {"proj": proj, "A": A}, lambda proj, A: lejepa(proj, A, 0.05), ["proj"])

# ---- The projection heads' batch norm (PyTorch BatchNorm1d in training mode, as the official
# SimCLR, BYOL, VICReg and LeJEPA heads run it), through a fixed linear read-out so every
# gradient is non-trivial ----
x, gamma, beta, w = draw(8, 16, scale=2.0), draw(16), draw(16), draw(8, 16)
case("batchnorm", {}, {"x": x, "gamma": gamma, "beta": beta, "w": w},
     lambda x, gamma, beta, w: (F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5) * w).sum(),
     ["x", "gamma", "beta"])

print(json.dumps({"generated_by": "bench/ssl_parity.py", "torch": torch.__version__, "cases": cases}))
