"""Launching jobs through Hydra's own sweeper and launcher plugins.

`promptlab run -m` hands a `LaunchJob` to Hydra's multirun machinery (`Hydra.multirun`:
the configured sweeper expands the overrides, the configured launcher runs the jobs), so
every installed launcher plugin works as Hydra users know it: ``hydra/launcher=joblib``,
``submitit_local``, ``submitit_slurm``, ``ray``, ``rq``. Shards use the launcher alone:
N copies of one job, each told its number by the launcher (``hydra.job.num``).

A `LaunchJob` is a picklable value (joblib, submitit and Ray ship it to other processes):
it turns the config Hydra composed for a job into a validated `LoadedConfig` and calls
its `target`, a module-level function of the layer above, with the job's number and a
picklable context. Defaults that keep Hydra quiet unless the user asks otherwise: the
sweep directory is a temporary one, removed afterwards (no ``multirun/``), no
``.hydra/`` copies, no logging configuration.
"""

from __future__ import annotations

import shutil
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from promptlab.config.loading import LoadedConfig, validate
from promptlab.config.overrides import force, key_of
from promptlab.errors import ConfigError, UserError

if TYPE_CHECKING:
    from hydra._internal.hydra import Hydra

__all__ = ["Failed", "JobResult", "LaunchFailed", "LaunchJob", "launch_copies", "multirun"]

RAY_MEMORY = "hydra.launcher.ray.init.object_store_memory"

# target(loaded config, job number, context) -> a picklable summary
Target = Callable[[LoadedConfig, int, Any], Any]


@dataclass(frozen=True)
class JobResult:
    """What the launcher brought back for one job: the target's value, or its failure."""

    num: int
    overrides: tuple[str, ...]
    value: Any
    error: str | None


@dataclass(frozen=True)
class Failed:
    """A job that ended in an error, as the launcher brings it back."""

    error: str


@dataclass(frozen=True)
class LaunchJob:
    """The job function Hydra's launchers call with each job's composed config."""

    target: Target
    config_dir: str
    forced: frozenset[str]  # keys promptlab prefixed with ++ (see overrides.force)
    context: Any = None

    def __call__(self, cfg: DictConfig) -> Any:
        hc = HydraConfig.get()
        choices = {str(k): v for k, v in OmegaConf.to_container(hc.runtime.choices).items()  # type: ignore[union-attr]
                   if not str(k).startswith("hydra/")}
        given = tuple(self._unforce(str(o)) for o in hc.overrides.task)
        num = int(hc.job.num)
        # A job that raised would stop Hydra's sweeper after its batch: failures come back
        # as values, so the other jobs go on.
        try:
            plain = validate(cfg, choices, Path(self.config_dir), given)
            loaded = LoadedConfig(plain, given, choices, Path(self.config_dir))
            return self.target(loaded, num, self.context)
        except UserError as exc:
            return Failed(str(exc))
        except Exception as exc:  # a bug: its traceback, and the others go on
            traceback.print_exc()
            return Failed(f"{type(exc).__name__}: {exc}")

    def _unforce(self, override: str) -> str:
        if override.startswith("++") and (key_of(override) or "") in self.forced:
            return override[2:]
        return override


def _forced(overrides: Sequence[str]) -> tuple[list[str], frozenset[str]]:
    out, keys = [], set()
    for o in overrides:
        f = force(o)
        if f != o:
            keys.add(key_of(o) or "")
        out.append(f)
    return out, frozenset(keys)


def _quiet(overrides: Sequence[str], sweep_dir: str) -> list[str]:
    """Hydra's defaults for a batch tool, unless the user chose otherwise."""
    keys = {(key_of(o) or "").lstrip("+~") for o in overrides}
    extra = []
    if "hydra.sweep.dir" not in keys:
        extra.append(f"hydra.sweep.dir={sweep_dir}")
    if "hydra.output_subdir" not in keys:
        extra.append("hydra.output_subdir=null")
    for group in ("hydra/job_logging", "hydra/hydra_logging"):
        if group not in keys:
            extra.append(f"{group}=none")
    if "hydra/launcher=ray" in overrides and RAY_MEMORY not in keys:
        # hydra-ray-launcher 1.2.2 sets object_store_memory for its own CI, and current
        # Ray refuses it when connecting to an existing cluster ("When connecting to an
        # existing cluster, object_store_memory must not be provided"): leave it to Ray.
        extra.append(f"+{RAY_MEMORY}=null")
    return [*overrides, *extra]


class LaunchFailed(Exception):
    """The launcher itself failed while the jobs ran (a worker killed, a lost node); its
    message is one line. Jobs that finished before are recorded; the others are not."""


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: " + (str(exc).strip().splitlines() or [""])[0][:300]


def _hydra_error(exc: BaseException) -> ConfigError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ConfigError(f"hydra: {first}; check the hydra/... overrides (is the launcher or "
                       "sweeper plugin installed? e.g. pip install 'promptlab[joblib]')")


def _results(returns: Sequence[Any], first_num: int = 0) -> list[JobResult]:
    out = []
    for i, ret in enumerate(returns):
        overrides = tuple(ret.overrides or ())
        num = first_num + i
        value = ret._return_value
        if ret.status == JobStatus.COMPLETED and isinstance(value, Failed):
            out.append(JobResult(num, overrides, None, value.error.splitlines()[0]))
        elif ret.status == JobStatus.COMPLETED:
            out.append(JobResult(num, overrides, ret._return_value, None))
        else:
            out.append(JobResult(num, overrides, None, _first_line(ret._return_value)))
    return out


def _launch(config_dir: Path, overrides: Sequence[str], job: LaunchJob, prefix: str,
            body: Callable[[Hydra, list[str]], Sequence[Any]]) -> Sequence[Any]:
    """Hydra set up for `config_dir` around `body(hydra, overrides)`: a temporary sweep
    directory (removed afterwards), Hydra's state cleared before and after. Config errors
    become one line (exit 2); anything else the launcher raises (a worker killed, a lost
    node) becomes `LaunchFailed`."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir),
                                   job_name="promptlab"):
            hydra = GlobalHydra.instance().hydra
            assert hydra is not None
            return body(hydra, _quiet(overrides, tmp))
    except (HydraException, OmegaConfBaseException, ValueError, OSError) as exc:
        raise _hydra_error(exc) from None
    except Exception as exc:
        raise LaunchFailed(_first_line(exc)) from exc
    finally:
        GlobalHydra.instance().clear()
        shutil.rmtree(tmp, ignore_errors=True)


def multirun(config_dir: Path, overrides: Sequence[str], target: Target,
             context: Any = None) -> list[JobResult]:
    """Run a sweep through Hydra's configured sweeper and launcher; one result per job."""
    forced, keys = _forced(overrides)
    job = LaunchJob(target, str(config_dir), keys, context)
    batches = _launch(config_dir, forced, job, "promptlab-sweep-", lambda hydra, quiet:
                      hydra.multirun("config", job, quiet, with_log_configuration=False))
    out: list[JobResult] = []
    for batch in batches or []:
        out += _results(batch, len(out))
    return out


def launch_copies(config_dir: Path, overrides: Sequence[str], n: int, target: Target,
                  context: Any = None) -> list[JobResult]:
    """N copies of one job through the configured launcher (no sweeper): the shards."""
    forced, keys = _forced(overrides)
    job = LaunchJob(target, str(config_dir), keys, context)

    def copies(hydra: Hydra, quiet: list[str]) -> Sequence[Any]:
        from hydra._internal.callbacks import Callbacks
        from hydra.core.plugins import Plugins
        from hydra.core.utils import setup_globals
        from hydra.types import HydraContext, RunMode

        setup_globals()
        cfg = hydra.compose_config("config", quiet, run_mode=RunMode.MULTIRUN,
                                   with_log_configuration=False)
        HydraConfig.instance().set_config(cfg)
        context_ = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(cfg))
        launcher = Plugins.instance().instantiate_launcher(
            config=cfg, hydra_context=context_, task_function=job)
        task = [str(o) for o in cfg.hydra.overrides.task]
        return launcher.launch([task] * n, initial_job_idx=0)

    return _results(_launch(config_dir, forced, job, "promptlab-shards-", copies))
