"""birdie-ssm: state space language models pretrained with a dynamic mixture of objectives."""

from birdie_ssm import plugins as _plugins

__version__ = "0.1.0"

# The components that own parts of the run config's schema register their checks when imported
# (plugins.register_config_check); the package names them here, at the top, and they are imported
# when a config is first validated, so `import birdie_ssm` stays light and config.py, at the
# bottom, imports none of them.
_plugins.declare_config_modules(
    "birdie_ssm.models.registry", "birdie_ssm.tasks", "birdie_ssm.train.loggers"
)


def __getattr__(name: str) -> object:
    # ``birdie_ssm.Birdie`` without importing it (or JAX) at ``import birdie_ssm``.
    if name == "Birdie":
        from birdie_ssm.birdie import Birdie

        return Birdie
    raise AttributeError(f"module 'birdie_ssm' has no attribute '{name}'")
