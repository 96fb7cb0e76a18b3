"""What the hidden parts of the bottleneck notebook observe of the student's code.

Bound into the sandbox and public: a notebook may print this file into its
feedback. Each observer runs the student's object on the challenge the grader
sends at the graded cell and records what it does, as JSON data (shapes,
layer settings, parameter shapes, outputs with canonical weights, training
histories). Nothing here knows the right answer: the judges that compare
these records with plain-NumPy references stay with the grader
(``autograder/grade/hidden/bottleneck.py``). Where a part of ``small_resnet``
is observed on its own, the student's ``Bottleneck`` is swapped for a spy
that records its arguments and only changes the shape (one strided 1x1
convolution), never for a correct block.
"""
import inspect

from ...student import gluon_walk as walk
from ...student.lazy_mxnet import gluon
from ...student.checks.bottleneck import (
    block_info, build_block, conv_info, easy_data, observe_shapes, raised, spied, train, try_run)
from ...student.parts import canonical


def parameter_shapes(params, skip=()):
    """[[shape, frozen], ...] of the parameters (a ParameterDict's values), leaving out ids in ``skip``."""
    return [[[int(n) for n in p.shape], p.grad_req == "null"] for p in params if id(p) not in skip]


# --------------------------------------------------------------- Bottleneck

def observe_structure(Bottleneck, challenge):
    """Each case's layers and parameter shapes after a run on a (1, c_in, 8, 8) batch."""
    found = []
    for c, s, proj, c_in in challenge["cases"]:
        blk = build_block(Bottleneck, c, s, proj)
        _, error = try_run(blk, (1, c_in, 8, 8))
        found.append({"error": error, "layers": block_info(blk),
                      "params": None if error else parameter_shapes(blk.collect_params().values())})
    return {"found": found}


def observe_behaviour(Bottleneck, challenge):
    """Each case's output (stride 1) with canonical weights on a canonical input."""
    seed, outputs = challenge["seed"], []
    for c, proj, c_in, side in challenge["cases"]:
        blk = build_block(Bottleneck, c, 1, proj)
        x = canonical(seed, "input", (2, c_in, side, side))
        _, error = try_run(blk, x.shape, seed)  # the run initialises to the seed's canonical weights
        if error is not None:
            outputs.append({"error": error, "layers": block_info(blk)})
            continue
        outputs.append({"output": walk.forward(blk, x).asnumpy().tolist(), "layers": block_info(blk)})
    return {"outputs": outputs}


# ------------------------------------------------------------- small_resnet

def normalise_call(call):
    """A recorded Bottleneck call as [num_channels, strides (an int when square), use_projection]."""
    c, s, p = call
    s = [int(n) for n in s] if isinstance(s, (tuple, list)) else [int(s), int(s)]
    return [int(c), s[0] if len(s) == 2 and s[0] == s[1] else s, bool(p)]


def leaf_kinds(net, spy):
    """Each leaf of ``net`` in order, described by kind; the spy blocks by their creation index."""
    blocks = {id(unit.proj): i for i, unit in enumerate(spy.instances)}
    found = []
    for leaf in walk.leaves(net):
        if id(leaf) in blocks:
            found.append({"kind": "block", "index": blocks[id(leaf)]})
        elif isinstance(leaf, gluon.nn.Conv2D):
            found.append(dict(conv_info(leaf), kind="conv"))
        elif isinstance(leaf, gluon.nn.Dense):
            found.append({"kind": "dense", "units": int(leaf._units), "bias": leaf.bias is not None,
                          "shape": [int(n) for n in leaf.weight.shape]})
        elif isinstance(leaf, gluon.nn.BatchNorm):
            found.append({"kind": "batch_norm", "size": int(leaf.gamma.shape[0])})
        elif isinstance(leaf, gluon.nn.MaxPool2D):
            found.append({"kind": "max_pool"})
        elif isinstance(leaf, gluon.nn.GlobalAvgPool2D):
            found.append({"kind": "global_avg_pool"})
        else:
            found.append({"kind": "other"})
    return found


def observe_assembly(small_resnet, challenge):
    """The Bottleneck calls, the layers in order, and the output shapes for the challenge's inputs
    and number of classes."""
    try:
        inspect.signature(small_resnet).bind(challenge["num_classes"])
        accepts = True
    except TypeError:
        accepts = False
    net, spy = spied(small_resnet)
    found = {"accepts_num_classes": accepts, "calls": [normalise_call(call) for call in spy.calls]}
    first, *others = challenge["inputs"]
    try:  # the first run also initialises the layers
        found["shapes"] = [walk.shape_of(walk.run(net, first))]
    except Exception as error:
        return dict(found, run_error=raised(error))
    found["layers"] = leaf_kinds(net, spy)
    for shape in others:
        try:
            found["shapes"].append(walk.shape_of(walk.run(net, shape)))
        except Exception as error:
            found["shapes"].append({"error": raised(error)})
    if accepts:
        other, _ = spied(small_resnet, challenge["num_classes"])
        found["num_classes_shape"] = walk.shape_of(walk.run(other, challenge["classes_input"]))
    return found


def observe_small_behaviour(small_resnet, challenge):
    """The layers, the spies' 1x1 convolutions, and the output with canonical weights."""
    net, spy = spied(small_resnet)
    side = challenge["side"]
    x = canonical(challenge["seed"], "input", (challenge["batch"], 3, side, side))
    walk.run(net, x.shape, challenge["seed"])  # initialises to the seed's canonical weights
    return {"layers": leaf_kinds(net, spy),
            "blocks": [conv_info(unit.proj) for unit in spy.instances],
            "output": walk.forward(net, x).asnumpy().tolist()}


def observe_counts(small_resnet, challenge):
    """small_resnet(num_classes) with spies for blocks: the output shape, each block used
    ([num_channels, strides, use_projection, input channels]) and the shapes of all other parameters."""
    net, spy = spied(small_resnet, challenge["num_classes"])
    shape = walk.shape_of(walk.run(net, challenge["input"]))
    used = {id(leaf) for leaf in walk.leaves(net)}
    blocks = [normalise_call(call) + [int(unit.proj.weight.shape[1])]
              for call, unit in zip(spy.calls, spy.instances) if id(unit.proj) in used]
    spies = {id(p) for unit in spy.instances for p in unit.collect_params().values()}
    return {"shape": shape, "blocks": blocks, "params": parameter_shapes(net.collect_params().values(), spies)}


# --------------------------------------------------------------- train_adam

# The data of each phase: seeded by the challenge's seed and the phase, so the judge makes the same.
PHASES = {"step": 0, "learn": 1, "steps": 2}


def training_data(challenge, phase):
    """((X_train, y_train), (X_test, y_test)) of one phase of a train_adam challenge.

    In the "steps" phase the first training examples are one point repeated with every label:
    whatever the weights, one of them is right and the others wrong, so the epoch's fraction
    correct is never 0 or 1 and (the number of examples being prime to the last batch's size)
    no single batch's fraction can equal it."""
    spec = challenge if phase == "steps" else challenge[phase]
    classes = challenge["classes"]
    (X, y), test = easy_data([challenge["seed"], PHASES[phase]], spec["n_train"], spec["n_test"],
                             challenge["features"], classes)
    if phase == "steps":
        X[:classes], y[:classes] = X[0], range(classes)
    return (X, y), test


def observe_train_behaviour(train_adam, challenge):
    """One full-batch epoch (the first Adam step), then several epochs on easy data."""
    features, classes = challenge["features"], challenge["classes"]
    step = dict(challenge["step"], batch_size=challenge["step"]["n_train"], epochs=1)
    record, net = train(train_adam, step, features, classes, training_data(challenge, "step"))
    found = {"step": {"history": record, "first": net.first, "after": net.weights()}}
    record, net = train(train_adam, challenge["learn"], features, classes,
                        training_data(challenge, "learn"))
    found["learn"] = {"history": record, "final": net.weights()}
    return found


def observe_train_steps(train_adam, challenge):
    """One epoch at learning rate 0: the history and the weights the loop trained from."""
    spec = {"batch_size": challenge["batch_size"], "epochs": 1, "lr": 0.0}
    record, net = train(train_adam, spec, challenge["features"], challenge["classes"],
                        training_data(challenge, "steps"))
    return {"history": record, "first": net.first}


OBSERVERS = {
    "bottleneck_shapes": observe_shapes,
    "bottleneck_structure": observe_structure,
    "bottleneck_behaviour": observe_behaviour,
    "small_resnet_assembly": observe_assembly,
    "small_resnet_behaviour": observe_small_behaviour,
    "small_resnet_counts": observe_counts,
    "train_adam_behaviour": observe_train_behaviour,
    "train_adam_steps": observe_train_steps,
}
