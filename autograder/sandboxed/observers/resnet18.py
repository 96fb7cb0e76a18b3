"""What the hidden parts of the ResNet-18 notebook observe of a student's code.

The sandbox runs these beside the student's code at each hidden graded cell,
on the challenge the grader sends then (sizes, class counts, a seed for the
weights and inputs, all drawn secretly per submission). Each returns plain
JSON data: shapes, layer settings, outputs with the seed's weights, the
parameters' sizes. What a correct answer gives is decided only by the judges
(``autograder/grade/hidden/resnet18.py``), which never enter the sandbox.

This file is public: a notebook can print it. It holds no expected value and
no correct block; the stand-ins it uses to judge a piece on its own
(``autograder.student.checks.resnet18``) record how they are called and change
shapes, nothing more.
"""
import inspect

from autograder.student import gluon_walk as walk
from autograder.student.lazy_mxnet import autograd, gluon, mnp
from autograder.student.checks.resnet18 import PARTS as VISIBLE, build_residual, spied_resnet18
from autograder.student.parts import canonical, fail


def layer_settings(block):
    """The kind and settings of every convolution, max pooling and BatchNorm layer of ``block``."""
    return {"convs": [{"kernel": list(walk.kernel(c)), "stride": list(walk.stride(c)),
                       "pad": list(walk.padding(c)), "channels": int(c._kwargs["num_filter"]),
                       "bias": c.bias is not None}
                      for c in walk.convs(block)],
            "pools": [{"kernel": list(p._kwargs["kernel"]), "stride": list(walk.stride(p)),
                       "pad": list(walk.padding(p))} for p in walk.max_pools(block)],
            "batch_norms": len(walk.batch_norms(block)),
            "batch_norms_trained": all(bn.gamma.grad_req != "null" and bn.beta.grad_req != "null"
                                       for bn in walk.batch_norms(block))}


def output_with_canonical_weights(block, seed, x):
    """``block``'s output for the input ``x`` once every weight holds the seed's canonical value
    (its parameters no longer train afterwards: see gluon_walk.initialize_canonical)."""
    walk.initialize_canonical(block, seed)
    return {"output": walk.forward(block, x).asnumpy().tolist(), "biases": walk.has_biases(block)}


# ----------------------------------------------------------------- Residual

def residual_structure(Residual, challenge):
    settings = []
    for c, p, s, c_in in challenge["cases"]:
        blk = build_residual(Residual, c, p, s)
        walk.run(blk, (1, c_in, 8, 8))
        settings.append(layer_settings(blk))
    return {"settings": settings}


def residual_behaviour(Residual, challenge):
    seed = challenge["seed"]
    return {"outputs": [output_with_canonical_weights(build_residual(Residual, c, p, s), seed,
                                                      canonical(seed, "input", (2, c_in, side, side)))
                        for c, p, s, c_in, side in challenge["cases"]]}


# -------------------------------------------------------------------- stem

def stem_structure(make_stem, challenge):
    stem = make_stem()
    shape = walk.shape_of(walk.run(stem, (challenge["batch"], 1, challenge["side"], challenge["side"])))
    return dict(layer_settings(stem), shape=shape)


def stem_behaviour(make_stem, challenge):
    side = challenge["side"]
    return output_with_canonical_weights(make_stem(), challenge["seed"],
                                         canonical(challenge["seed"], "input", (2, 1, side, side)))


# ---------------------------------------------------------------- resnet18

def resnet18_assembly(resnet18, challenge):
    net, calls = spied_resnet18(resnet18)
    shapes = [walk.shape_of(walk.run(net, (batch, 1, side, side))) for batch, side in challenge["inputs"]]
    leaves = walk.leaves(net)
    stems = [i for i, b in enumerate(leaves) if isinstance(b, gluon.nn.Conv2D) and walk.stride(b) == (4, 4)]
    return {"calls": calls, "shapes": shapes, "stems": stems,
            "global_pools": sum(isinstance(b, gluon.nn.GlobalAvgPool2D) for b in leaves),
            "dense_units": int(leaves[-1]._units) if isinstance(leaves[-1], gluon.nn.Dense) else None,
            "dense_bias": isinstance(leaves[-1], gluon.nn.Dense) and leaves[-1].bias is not None,
            "tail_is_pool_then_dense": (len(leaves) > 1 and isinstance(leaves[-2], gluon.nn.GlobalAvgPool2D)
                                        and isinstance(leaves[-1], gluon.nn.Dense))}


def resnet18_num_classes(resnet18, challenge):
    try:
        inspect.signature(resnet18).bind(1)
    except TypeError:
        fail("resnet18 should accept num_classes (default 10).")
    net, _ = spied_resnet18(resnet18, challenge["num_classes"])
    return {"shape": walk.shape_of(walk.run(net, (challenge["batch"], 1, 64, 64)))}


def _outputs_through(layer, y, found):
    """Apply ``layer`` to ``y``, noting the shape after every layer; the layers of a
    (Hybrid)Sequential container are applied one by one, at any depth, so a stage
    is found whether it sits at the top level or inside a container of its own."""
    if isinstance(layer, (gluon.nn.Sequential, gluon.nn.HybridSequential)):
        for child in walk.children(layer):
            y = _outputs_through(child, y, found)
    else:
        y = layer(y)
    found.append(walk.shape_of(y))
    return y


def resnet18_complete(resnet18, challenge):
    """The whole network built from the student's pieces: the shape after every layer at the
    challenge's sides, every parameter's shape and whether it trains, and the output with the
    seed's weights and input."""
    seed, side = challenge["seed"], challenge["input"]
    net = resnet18()
    trains = {name: p.grad_req != "null" for name, p in net.collect_params().items()}
    observation = output_with_canonical_weights(net, seed, canonical(seed, "input", (1, 1, side, side)))
    shapes = []
    for side in challenge["sides"]:  # shapes do not depend on the weights: no re-initialising
        found = []
        with autograd.predict_mode():
            _outputs_through(net, mnp.zeros((1, 1, side, side)), found)
        shapes.append(found)
    parameters = [[[int(n) for n in p.shape], trains.get(name, p.grad_req != "null")]
                  for name, p in net.collect_params().items()]
    return dict(observation, shapes=shapes, parameters=parameters)


OBSERVERS = {
    "residual_shapes": VISIBLE["residual_demo_shapes"].observe,
    "residual_structure": residual_structure,
    "residual_behaviour": residual_behaviour,
    "stem_structure": stem_structure,
    "stem_behaviour": stem_behaviour,
    "resnet_block_units": VISIBLE["resnet_block_demo"].observe,
    "resnet18_assembly": resnet18_assembly,
    "resnet18_num_classes": resnet18_num_classes,
    "resnet18_complete": resnet18_complete,
}
