"""mmwsss registries: children (scope ``'mmwsss'``) of MMSegmentation's registries.

With ``default_scope = 'mmwsss'`` a config resolves a type in this order: mmwsss's own
modules, then MMSeg's (through the parent registry), then MMEngine's. Modules of other
OpenMMLab libraries are named with their scope, e.g. ``type='mmpretrain.VGG'``.
"""
from mmengine.registry import Registry
from mmseg.registry import DATA_SAMPLERS as MMSEG_DATA_SAMPLERS
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import EVALUATOR as MMSEG_EVALUATOR
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import INFERENCERS as MMSEG_INFERENCERS
from mmseg.registry import LOG_PROCESSORS as MMSEG_LOG_PROCESSORS
from mmseg.registry import LOOPS as MMSEG_LOOPS
from mmseg.registry import METRICS as MMSEG_METRICS
from mmseg.registry import MODEL_WRAPPERS as MMSEG_MODEL_WRAPPERS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import OPTIM_WRAPPERS as MMSEG_OPTIM_WRAPPERS
from mmseg.registry import OPTIMIZERS as MMSEG_OPTIMIZERS
from mmseg.registry import PARAM_SCHEDULERS as MMSEG_PARAM_SCHEDULERS
from mmseg.registry import RUNNER_CONSTRUCTORS as MMSEG_RUNNER_CONSTRUCTORS
from mmseg.registry import RUNNERS as MMSEG_RUNNERS
from mmseg.registry import TASK_UTILS as MMSEG_TASK_UTILS
from mmseg.registry import TRANSFORMS as MMSEG_TRANSFORMS
from mmseg.registry import VISBACKENDS as MMSEG_VISBACKENDS
from mmseg.registry import VISUALIZERS as MMSEG_VISUALIZERS
from mmseg.registry import WEIGHT_INITIALIZERS as MMSEG_WEIGHT_INITIALIZERS

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
    'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
    'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'INFERENCERS',
    'PSEUDO_LABEL_RULES'
]


def _child(name, parent, location=None):
    # MMEngine looks up a parent's modules without importing the parent's
    # locations, so the child imports them too: using an mmwsss registry makes
    # every MMSeg module of that kind available, with or without
    # register_all_modules().
    locations = ([location] if location else []) + list(parent._locations)
    reg = Registry(name, parent=parent, scope='mmwsss', locations=locations)
    # MMEngine resolves 'scope.Type' from a root registry through the root's direct
    # children only, and mmwsss is a grandchild (root -> mmseg -> mmwsss). Listing
    # it among the root's children too lets code that holds a root registry (e.g.
    # the Runner's MODEL_WRAPPERS, other OpenMMLab libraries) resolve
    # 'mmwsss.Type'. The parent chain is unchanged.
    root = reg._get_root_registry()
    root._children.setdefault('mmwsss', reg)
    return reg


RUNNERS = _child('runner', MMSEG_RUNNERS, 'mmwsss.engine')
RUNNER_CONSTRUCTORS = _child('runner constructor', MMSEG_RUNNER_CONSTRUCTORS,
                             'mmwsss.engine')
LOOPS = _child('loop', MMSEG_LOOPS, 'mmwsss.engine')
HOOKS = _child('hook', MMSEG_HOOKS, 'mmwsss.engine')
DATASETS = _child('dataset', MMSEG_DATASETS, 'mmwsss.datasets')
DATA_SAMPLERS = _child('data sampler', MMSEG_DATA_SAMPLERS,
                       'mmwsss.datasets')
TRANSFORMS = _child('transform', MMSEG_TRANSFORMS, 'mmwsss.datasets')
MODELS = _child('model', MMSEG_MODELS, 'mmwsss.models')
MODEL_WRAPPERS = _child('model_wrapper', MMSEG_MODEL_WRAPPERS, 'mmwsss.models')
WEIGHT_INITIALIZERS = _child('weight initializer', MMSEG_WEIGHT_INITIALIZERS,
                             'mmwsss.models')
OPTIMIZERS = _child('optimizer', MMSEG_OPTIMIZERS,
                    'mmwsss.engine')
OPTIM_WRAPPERS = _child('optim_wrapper', MMSEG_OPTIM_WRAPPERS,
                        'mmwsss.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMSEG_OPTIM_WRAPPER_CONSTRUCTORS,
                                    'mmwsss.engine')
PARAM_SCHEDULERS = _child('parameter scheduler', MMSEG_PARAM_SCHEDULERS,
                          'mmwsss.engine')
METRICS = _child('metric', MMSEG_METRICS, 'mmwsss.evaluation')
EVALUATOR = _child('evaluator', MMSEG_EVALUATOR, 'mmwsss.evaluation')
TASK_UTILS = _child('task util', MMSEG_TASK_UTILS, 'mmwsss.models')
VISUALIZERS = _child('visualizer', MMSEG_VISUALIZERS, None)
VISBACKENDS = _child('vis_backend', MMSEG_VISBACKENDS, None)
LOG_PROCESSORS = _child('log_processor', MMSEG_LOG_PROCESSORS,
                        None)
INFERENCERS = _child('inferencer', MMSEG_INFERENCERS, None)

# CAM -> pseudo-label rules (background rules, saliency fusion, confident regions; stage
# [3]). MMSeg has no such registry, so this one is a root registry of its own.
PSEUDO_LABEL_RULES = Registry(
    'pseudo label rule', scope='mmwsss', locations=['mmwsss.pseudo'])
