"""Editing a checkpoint's instance table: append a fitted latent as a new, named instance."""

from __future__ import annotations

import dataclasses

import torch

from models.checkpoint import MODEL_KINDS, Checkpoint


def with_instance(ckpt: Checkpoint, latent: torch.Tensor, name: str, meta: dict,
                  modulation_offset: torch.Tensor | None = None) -> Checkpoint:
    """A copy of the checkpoint with `latent` (and the modulation offset of a car refined past it)
    appended as its last instance."""
    config = dataclasses.replace(ckpt.model.config, num_instances=ckpt.model.config.num_instances + 1)
    model = MODEL_KINDS[ckpt.model.kind][1](config)
    state = ckpt.model.state_dict()
    table = state["latents.weight"]  # on the device the model was moved to
    state["latents.weight"] = torch.cat([table, latent.detach().to(table.device)[None]])
    model.load_state_dict(state)
    offsets = dict(ckpt.modulation_offsets)
    if modulation_offset is not None:
        offsets[len(ckpt.instance_names)] = modulation_offset.detach().cpu().float()
    return Checkpoint(model.eval(), [*ckpt.instance_names, name], {**ckpt.meta, **meta}, offsets,
                      ckpt.weights_dtype)
