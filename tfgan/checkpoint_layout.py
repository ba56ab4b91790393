"""How a model's variables are named in checkpoints, and reading the older layout.

Keras 3 keeps sub-layers held in Python lists out of TensorFlow's object graph, so a
checkpoint of the model object itself silently misses their variables. Checkpoints hold
instead a flat `{path: variable}` dict per model, where the path is the chain of attribute
names from the model to the layer that owns the variable (list positions as numbers) and
the variable's own name: ``convs/0/kernel``, ``res1/1/conv/layer/bias``. Reordering,
inserting or renaming unrelated layers leaves every other path, so every other restored
value, where it was. Optimisers are built over the trainable variables in path order, so
their slots follow the same names.

Checkpoints written before this layout (up to commit b33db0d) keyed each variable by its
position in ``model.weights``. `is_index_keyed` recognises them and `restore_index_keyed`
reads them, including the optimisers' slots, whose order was that of
``model.trainable_variables``.
"""

from __future__ import annotations

import re

import keras
import tensorflow as tf

_INDEX_KEY = re.compile(r"^(generator|ema_generator|discriminator)/\d{4}/")


def variable_paths(model) -> dict:
    """`{path: Keras variable}` for every variable of `model`, sorted by path.

    A variable reachable by two paths (a spectral-norm wrapper also holds its layer's
    kernel) is named by the layer that created it: the deeper one.
    """
    out, seen = {}, set()
    _walk(model, "", out, seen)
    missing = [w.path for w in model.weights if id(_value(w)) not in seen]
    if missing:
        raise ValueError(f"{type(model).__name__} holds variables outside its public "
                         f"attributes, so they have no stable path: {missing}")
    return dict(sorted(out.items()))


def _value(variable):
    return variable.value if hasattr(variable, "value") else variable


def _walk(layer, prefix: str, out: dict, seen: set) -> None:
    for attr, value in sorted(vars(layer).items()):
        if attr.startswith("_"):
            continue
        if isinstance(value, (list, tuple)):
            children = [(f"{attr}/{i}/", item) for i, item in enumerate(value)]
        else:
            children = [(f"{attr}/", value)]
        for key, child in children:
            if isinstance(child, keras.layers.Layer):
                _walk(child, prefix + key, out, seen)
    for variable in list(layer._trainable_variables) + list(layer._non_trainable_variables):
        if id(_value(variable)) not in seen:
            seen.add(id(_value(variable)))
            out[prefix + variable.name] = variable


def trackable_weights(model) -> dict:
    """`{path: variable}` for tf.train.Checkpoint (see module docstring)."""
    return {path: _value(v) for path, v in variable_paths(model).items()}


def checkpoint_key(name: str, path: str) -> str:
    """The key under which a checkpoint of `{name: trackable_weights(model)}` stores the
    variable at `path` (TensorFlow escapes "." as ".." and "/" as ".S" in names)."""
    escaped = path.replace(".", "..").replace("/", ".S")
    return f"{name}/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"


def optimizer_variables(model) -> list:
    """`model`'s trainable variables in path order: what its optimiser is built over, so
    that slot k belongs to the k-th path whatever order the layers were created in."""
    return [v for v in variable_paths(model).values() if v.trainable]


def index_keyed_weights(model) -> dict:
    """The older layout: `{index: variable}` over ``model.weights`` (creation order)."""
    return {f"{i:04d}": _value(w) for i, w in enumerate(model.weights)}


def is_index_keyed(path: str) -> bool:
    """True when the checkpoint at `path` was written in the older, index-keyed layout."""
    names = (name for name, _ in tf.train.list_variables(path))
    return any(_INDEX_KEY.match(name) for name in names)


def restore_index_keyed(path: str, models: dict, optimizers: dict, others: dict) -> None:
    """Reads an index-keyed checkpoint into `models` ({name: model}), `optimizers`
    ({name: (optimizer, model it trains)}) and `others` ({name: trackable}).

    The optimisers of this process are built in path order and those of the file in
    creation order. Each is restored into a copy built in creation order, then copied
    over by name: slot variables are named after the variable they belong to, so names
    match whatever the order.
    """
    copies = {}
    for name, (optimizer, model) in optimizers.items():
        copy = optimizer.__class__.from_config(optimizer.get_config())
        copy.build(model.trainable_variables)
        copies[name] = copy
    tracked = {name: index_keyed_weights(m) for name, m in models.items()}
    ckpt = tf.train.Checkpoint(**tracked, **copies, **others)
    ckpt.restore(path).expect_partial().assert_existing_objects_matched()
    for name, copy in copies.items():
        targets = _by_name(optimizers[name][0].variables)
        for key, sources in _by_name(copy.variables).items():
            for target, source in zip(targets[key], sources, strict=True):
                target.assign(source)


def _by_name(variables) -> dict:
    """{name: [variables of that name, in order]}: a loss-scale optimiser and the one it
    wraps both have an `iteration`, in the same order in every copy."""
    out = {}
    for v in variables:
        out.setdefault(v.name, []).append(v)
    return out
