"""The safetensors quick-start tutorial, run on ironsafe.

Every step of the tutorial the project started from (see
``shared/seed-tutorial.md``), with ``safetensors`` replaced by ``ironsafe``:
save a dict of tensors, open the file and read tensors by name, read part of
a tensor lazily, then save a torchvision ResNet-18 with ``save_model``, load
it into a fresh model with ``load_model``, and check that both models give
identical outputs. ``resnet18(weights=None)`` stands in for the tutorial's
pretrained weights (nothing is downloaded). Files are written to the current
directory.

Run: ``python examples/quickstart.py``
"""

# Saving tensors
import torch
from ironsafe.torch import save_file

tensors = {
    "embedding": torch.zeros((2, 2)),
    "attention": torch.zeros((2, 3))
}
save_file(tensors, "model.safetensors")

# Loading tensors
from ironsafe import safe_open

tensors = {}
# with safe_open("model.safetensors", framework="pt", device=0) as f:
with safe_open("model.safetensors", framework="pt", device='cpu') as f:
    for k in f.keys():
        tensors[k] = f.get_tensor(k) # loads the full tensor given a key
print(tensors)
# {'attention': tensor([[0., 0., 0.],
#          [0., 0., 0.]]),
#  'embedding': tensor([[0., 0.],
#          [0., 0.]])}

# Loading only part of a tensor (lazy loading)
tensors = {}
with safe_open("model.safetensors", framework="pt", device='cpu') as f:

    tensor_slice = f.get_slice("embedding")
    vocab_size, hidden_dim = tensor_slice.get_shape()
    print(vocab_size, hidden_dim)
    tensor = tensor_slice[:, :hidden_dim] # change the hidden_dim to load part of the tensor
    print(tensor)
# 2 2
# tensor([[0., 0.],
#         [0., 0.]])

# Saving a PyTorch model in the safetensors format
from torchvision.models import resnet18
from ironsafe.torch import load_model, save_model
import torch

model_pt = resnet18(weights=None)  # the tutorial: resnet18(pretrained=True)

# Save the state dict in the safetensors format
save_model(model_pt, "resnet18.safetensors")
# Instead of save_file(model.state_dict(), "model.safetensors")


# Load it into a model without weights
model_st = resnet18(weights=None)  # the tutorial: resnet18(pretrained=False)
load_model(model_st, "resnet18.safetensors")
# Instead of model.load_state_dict(load_file("model.safetensors"))


# Run the original model and the one loaded from safetensors on a random image
img = torch.randn(2, 3, 224, 224)

model_pt.eval()
model_st.eval()


with torch.no_grad():
    print(torch.all(model_pt(img)==model_st(img))) # tensor(True)

    assert torch.equal(model_pt(img), model_st(img)), "the loaded model gives other outputs"
