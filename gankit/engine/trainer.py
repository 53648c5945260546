"""The training loop shared by every GAN system: epochs, steps, logging, validation, checkpoints, health."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit.config_legacy import upgrade_legacy_keys
from gankit.engine.checkpoint import CheckpointManager
from gankit.engine.data import TrainData, build_train_data
from gankit.engine.distributed import DistContext
from gankit.engine.ema import Ema
from gankit.engine.faults import install_from_environment
from gankit.engine.health.events import Event
from gankit.engine.health_session import HealthSession
from gankit.engine.media import log_media
from gankit.engine.optim import OptimizerSet, parse_groups
from gankit.engine.precision import Precision
from gankit.engine.rng import capture_rng, restore_rng, seed_everything
from gankit.engine.run_dir import RunDirectory
from gankit.engine.settings import LoaderSettings, TrainSettings, from_mapping
from gankit.engine.state import InitialWeights
from gankit.engine.step import StepOutcome, StepRunner, windows_of
from gankit.engine.validation import run_validation
from gankit.errors import CheckpointError, ConfigError
from gankit.tasks.base import GanTask

EXIT_OK = 0
EXIT_STOPPED = 3  # a health check's "stop" action


class Trainer:
    """Trains any task through its contract (tasks/base.py): the caller builds the task from the config."""

    def __init__(
        self,
        config: Mapping[str, Any],
        task: GanTask,
        run_dir: str | Path,
        dist: DistContext,
        init: InitialWeights | None = None,
        progress: bool = True,
    ) -> None:
        # A config written before optimizer groups and the schedule moved (docs/CONTRACTS.md) reads as its new form.
        config = upgrade_legacy_keys(config, complete=True)
        self.config = dict(config)
        self.dist = dist
        self.device = dist.device
        self.progress = progress and dist.is_main
        self.settings = from_mapping(TrainSettings, config.get("train"), "train")
        self.loader_settings = LoaderSettings.from_data_section(config.get("data"))
        self.task = task
        groups = list(task.optimizer_groups())
        optim_settings = parse_groups(config.get("optim"), groups)
        if self.settings.num_threads:
            torch.set_num_threads(self.settings.num_threads)
        seed_everything(int(config.get("seed", 1234)))
        self.fault = install_from_environment()

        self.nets: dict[str, nn.Module] = {k: n.to(self.device) for k, n in task.build_networks().items()}
        for option in ("freeze", "init_skip"):
            unknown = sorted(set(getattr(self.settings, option)) - set(self.nets))
            if unknown:
                raise ConfigError(f"train.{option}: no network(s) {', '.join(unknown)} in this task; its networks "
                                  f"are {', '.join(self.nets)}.")
        for key in self.settings.freeze:
            self.nets[key].requires_grad_(False)
        if self.settings.sync_batchnorm:
            if self.device.type != "cuda":
                raise ConfigError("train.sync_batchnorm needs CUDA (SyncBatchNorm does not run on CPU); without it "
                                  "each process normalises its own share of the batch.")
            if dist.enabled:
                self.nets = {k: nn.SyncBatchNorm.convert_sync_batchnorm(n) for k, n in self.nets.items()}
        self.optim = OptimizerSet(groups, optim_settings, self.nets)
        self.precision = Precision(self.settings.precision, self.device)
        self.emas = self._build_emas()

        self.run = RunDirectory(run_dir, writer=dist.is_main)
        metric, mode = task.best_metric
        self.ckpt = CheckpointManager(self.run.checkpoints, keep_last=self.settings.keep_last, metric=metric,
                                      mode=mode)
        # The latest rank-averaged value of every logged loss, carried over steps that did not compute it: what
        # the task's schedule reads (a discriminator-loss threshold, extra generator steps while D wins).
        self.last_losses: dict[str, float] = {}
        self.step = 0  # completed optimizer steps
        self.epoch = 0
        # Global sample positions consumed in this epoch (all ranks together), so a run resumed with another
        # number of ranks continues at the same place in the epoch's order.
        self.samples_in_epoch = 0
        self.last_val: tuple[int, float] | None = None
        self._stop_signal: str | None = None
        self._rollback_scale = 1.0  # learning-rate reduction from rollbacks since the last checkpoint

        self.health = HealthSession(
            config.get("health") or {},
            self.task,
            self.nets,
            self.run,
            dist,
            console=self._print,
            precision=self.settings.precision,
        )
        resumed = self._resume()
        if not resumed and init is not None:
            skip = set(self.settings.init_skip)
            init.apply(self.nets, self.optim.optimizers, self.emas, skip=skip)
            loaded = sorted(set(init.networks) - skip)
            fresh = sorted(set(self.nets) - set(loaded))
            self._print(f"initialised from {init.source} ({', '.join(loaded)})"
                        + (f"; built fresh: {', '.join(fresh)}" if fresh else ""))

        self.live = self._wrap_ddp()
        seed = int(config.get("seed", 1234))
        train_set, self.val_batches = self.task.build_datasets(seed, log=self._print)
        needed = self._batches_for_step()
        self.data: TrainData = build_train_data(
            train_set, self.loader_settings, dist, seed, min_batches=needed, log=self._print
        )
        if self.data.batches_per_epoch < needed:
            raise ConfigError(
                f"one optimizer step needs {needed} batches (grad_accum × the schedule's windows) but an epoch "
                f"has {self.data.batches_per_epoch}; lower train.grad_accum or data.batch_size."
            )
        self.stepper = StepRunner(
            self.task,
            self.live,
            self.nets,
            self.optim,
            self.precision,
            should_skip=self.health.should_skip,
            dist=dist,
            fault=self.fault,
        )

    # --- set-up helpers -------------------------------------------------------------------------
    def _print(self, message: str) -> None:
        if self.dist.is_main:
            from tqdm import tqdm

            tqdm.write(message)

    def _build_emas(self) -> dict[str, Ema]:
        ema = self.settings.ema_settings
        if ema is None:
            return {}
        names = list(ema.networks) if ema.networks is not None else list(self.task.ema_networks)
        unknown = sorted(set(names) - set(self.nets))
        if unknown or not names:
            raise ConfigError(f"train.ema.networks: {unknown or names} — name networks of this task "
                              f"({', '.join(self.nets)}).")
        return {k: Ema(self.nets[k], ema.decay) for k in names}

    def _nets_for_inference(self) -> dict[str, nn.Module]:
        """The networks validation and export use: the EMA copies where `train.ema` keeps them."""
        return {**self.nets, **{k: e.module for k, e in self.emas.items()}}

    def _schedule(self) -> list[Any]:
        return list(self.task.schedule(self.step, self.last_losses))

    def _batches_for_step(self) -> int:
        return len(windows_of(self._schedule())) * self.settings.grad_accum

    def _wrap_ddp(self) -> dict[str, nn.Module]:
        if not self.dist.enabled:
            return dict(self.nets)
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        # A task whose steps leave some network out of a loss (a decoder per domain) says so; DDP then looks for
        # parameters without gradients instead of waiting for them.
        unused = bool(getattr(self.task, "find_unused_parameters", False))
        # DDP refuses a module with nothing to train (e.g. a frozen discriminator); it has no gradients to reduce.
        # Buffers are synced from rank 0 once, here, not before every forward: the only ones are spectral norm's
        # u/v, whose power iteration depends on the weights alone (identical on every rank), and G's loss reads D
        # through the plain module, where a per-forward broadcast would not happen anyway.
        return {k: DDP(n, device_ids=ids, forward_sync_buffers=False, find_unused_parameters=unused)
                if any(p.requires_grad for p in n.parameters()) else n for k, n in self.nets.items()}

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": "gankit",
            "kind": "train_state",
            "version": 1,
            "task": self.task.name,
            "config": self.config,
            "networks": {k: n.state_dict() for k, n in self.nets.items()},
            **self.optim.state_dict(),
            "scaler": self.precision.state_dict(),
            "ema": {k: e.state_dict() for k, e in self.emas.items()} or None,
            "health": self.health.state_dict(),
            "last_losses": dict(self.last_losses),
            "step": self.step,
            "epoch": self.epoch,
            "samples_in_epoch": self.samples_in_epoch,
            "rng": capture_rng(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, net in self.nets.items():
            net.load_state_dict(state["networks"][key])
        self.optim.load_state_dict(state["optimizers"], state.get("schedulers") or {})
        self.precision.load_state_dict(state.get("scaler"))
        saved_ema = state.get("ema")
        if saved_ema is not None and "networks" not in saved_ema and not all(k in self.nets for k in saved_ema):
            saved_ema = {"generator": saved_ema}  # written before train.ema named its networks: the generator's
        for key, ema in self.emas.items():
            if saved_ema is not None and key in saved_ema:
                ema.load_state_dict(saved_ema[key])
        self.health.load_state_dict(state.get("health"))
        self.last_losses = {k: float(v) for k, v in (state.get("last_losses") or {}).items()}
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.samples_in_epoch = int(state["samples_in_epoch"])
        restore_rng(state["rng"])

    def _resume(self) -> bool:
        found = self.ckpt.latest_loadable(map_location=self.device, set_aside=self.dist.is_main)
        if found is not None:
            path, state = found
            self.load_state_dict(state)
        self._check_ranks_resume_alike()
        # Logs start where training does: past the resumed step, or past step 0 when no checkpoint was found
        # (an earlier attempt killed before its first checkpoint left rows this run will write again).
        if self.dist.is_main:
            self.run.truncate_logs_after(self.step)
            self.health.truncate_after(self.step)
            self._report_set_aside()
        if found is None:
            return False
        self._print(f"resumed from {path} at step {self.step} (epoch {self.epoch}, "
                    f"{self.samples_in_epoch} samples into it)")
        return True

    def _report_set_aside(self) -> None:
        """An events.jsonl entry per unusable checkpoint that was moved to checkpoints/unusable/."""
        for entry in self.ckpt.set_aside:
            message = (f"the checkpoint of step {entry['step']} could not be loaded ({entry['reason']}); it was moved "
                       f"to {', '.join(entry['files'])} and training goes on from step {self.step}. Nothing was "
                       "deleted: look at it, or remove it once you do not need it.")
            self.health.sink.write(Event(self.step, "unusable_checkpoint", "warning", message, entry, "warn"))

    def _check_ranks_resume_alike(self) -> None:
        """Every rank reads the checkpoint itself: one that found another (or none, on a machine that does not
        see the run directory) would count other steps than the rest, and the ranks' collectives part ways."""
        if not self.dist.enabled:
            return
        newest, oldest = self.dist.agree_max(self.step), -self.dist.agree_max(-self.step)
        if newest != oldest:
            raise CheckpointError(
                f"the ranks found different checkpoints in {self.ckpt.folder} (from step {oldest} to step {newest}). "
                "Every rank reads the run directory to resume, so with several machines it must be on storage they "
                "all see (the same path on each)."
            )

    def save_checkpoint(self, metric: float | None = None) -> None:
        self.dist.broadcast_buffers(self.nets)  # on every rank: what is saved is rank 0's model, and all agree
        if self.dist.is_main:
            try:
                self.ckpt.save(self.step, self.state_dict(), self.task.export(self._nets_for_inference(), self.step),
                               metric)
            except OSError as exc:
                raise CheckpointError(
                    f"could not write a checkpoint at step {self.step} in {self.ckpt.folder}: {exc.strerror or exc}. "
                    f"The previous checkpoint is intact; free space and run the same command to resume."
                ) from None
        self._last_saved_step = self.step  # on every rank, so all ranks agree on when to save (and barrier)
        self._rollback_scale = 1.0  # the new checkpoint's rates already include any reduction
        self.dist.barrier()

    # --- the loop -------------------------------------------------------------------------------
    def fit(self) -> int:
        if self._done():
            self._print(f"nothing to do: the run at {self.run.root} already reached step {self.step} "
                        f"(epoch {self.epoch}); raise train.max_steps or train.max_epochs to train further.")
            return EXIT_OK
        self.run.write_config(self.config)
        self.run.write_environment(self.device, self.dist.world_size, self.data.describe())
        if self.health.check_unused_before_training(self._to_device(self.data.example_batch()), self.step) == "stop":
            self._print(f"stopped before training: see {self.run.root}/events.jsonl")
            return EXIT_STOPPED
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self._last_saved_step = self.step
        self._started = time.monotonic()
        self._first_step = self.step
        bar = self._progress_bar()
        code = EXIT_OK
        try:
            code = self._loop(bar)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if bar is not None:
                bar.close()
            self.run.close()
        return code

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=self._expected_total(), initial=self.step, unit="step", dynamic_ncols=True, desc="train")

    def _expected_total(self) -> int | None:
        """Steps this invocation is expected to end at (limits by steps, epochs or seconds), for the ETA."""
        s = self.settings
        totals = []
        if s.max_steps is not None:
            totals.append(s.max_steps)
        if s.max_epochs is not None:
            steps_per_epoch = max(1, self.data.batches_per_epoch // self._batches_for_step())
            totals.append(s.max_epochs * steps_per_epoch)
        done = self.step - self._first_step
        elapsed = time.monotonic() - self._started
        if s.max_seconds is not None and done > 0:
            totals.append(self.step + int((s.max_seconds - elapsed) / (elapsed / done)))
        return min(totals) if totals else None

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._stop_signal is not None:
            raise KeyboardInterrupt
        self._stop_signal = name
        self._print(f"{name} received: finishing this step, saving a checkpoint, then stopping "
                    "(send it again to stop at once)")

    def _stop_requested(self) -> bool:
        """Whether a stop signal reached this rank or any other (agreed: a rank stopping alone hangs the rest).

        `_stop_signal` stays this process's own: a signal another rank got does not make this one's first
        signal count as the second (which stops at once).
        """
        return bool(self.dist.agree_max(int(self._stop_signal is not None)))

    def _done(self) -> bool:
        s = self.settings
        if s.max_seconds is not None and getattr(self, "_started", None) is not None:
            # Ranks' clocks differ: the first rank out of time stops them all, at the same step.
            if self.dist.agree_max(int(time.monotonic() - self._started >= s.max_seconds)):
                return True
        return (s.max_steps is not None and self.step >= s.max_steps) or (
            s.max_epochs is not None and self.epoch >= s.max_epochs
        )

    @property
    def _global_batch(self) -> int:
        return self.loader_settings.batch_size * self.dist.world_size

    def _steps_left_in_epoch(self, batches: int) -> bool:
        """Whether the epoch still holds a step of `batches` batches per rank. In global positions: a run resumed
        with another number of ranks may stand between two global batches."""
        left = self.data.sampler.epoch_length - self.samples_in_epoch
        return left >= self._global_batch * batches

    def _to_device(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}

    def _next_windows(self, batches: Iterator[dict[str, Any]], count: int) -> list[list[dict[str, Any]]] | None:
        """`count` windows of grad_accum micro-batches, or None when the loader runs short."""
        windows = []
        for _ in range(count):
            window = []
            for _ in range(self.settings.grad_accum):
                batch = next(batches, None)
                if batch is None:
                    return None
                window.append(self._to_device(batch))
            windows.append(window)
        return windows

    def _end_epoch(self) -> None:
        self.epoch += 1
        self.samples_in_epoch = 0
        self.optim.step_schedulers("epoch", self.step)
        if self.settings.ckpt_every_epochs is not None and self.epoch % self.settings.ckpt_every_epochs == 0:
            self._checkpoint_now()

    def _loop(self, bar: Any) -> int:
        s = self.settings
        step_started = time.perf_counter()
        # A stop signal is checked before every step, not only right after one: it may arrive during the
        # validation or checkpoint that follows a step, or at an epoch's end.
        while not self._done() and not self._stop_requested():
            self.data.sampler.set_epoch(self.epoch, skip_samples=self.samples_in_epoch)
            batches = iter(self.data.loader)
            action = "continue"
            exhausted = False
            while not self._done() and not self._stop_requested():
                schedule = self._schedule()
                count = len(windows_of(schedule))
                if not self._steps_left_in_epoch(count * s.grad_accum):
                    break
                windows = self._next_windows(batches, count)
                if windows is None:  # the loader ran short of what the sampler promised: end the epoch
                    exhausted = True
                    break
                self.samples_in_epoch += count * s.grad_accum * self._global_batch
                outcome = self.stepper.run(self.step, schedule, windows)
                self._update_emas(outcome)
                self.step += 1
                self.optim.step_schedulers("step", self.step)
                now = time.perf_counter()
                action = self._after_step(outcome, now - step_started)
                step_started = now
                self._update_bar(bar, outcome)
                if action != "continue" or self._stop_requested():
                    break
                if self.step % s.val_every == 0:
                    self._validate()
                if s.ckpt_every is not None and self.step % s.ckpt_every == 0:
                    self._checkpoint_now()
            del batches  # ends this epoch's loader workers before anything else runs
            if action == "stop":
                self._checkpoint_now()
                self._print(f"stopped by the health monitor at step {self.step}; see {self.run.root}/events.jsonl. "
                            "Fix the cause, then run the same command to resume from the saved checkpoint.")
                return EXIT_STOPPED
            if action == "rollback":
                self._rollback()
                continue
            if self._stop_requested():
                return self._stop_for_signal()
            if exhausted or not self._steps_left_in_epoch(self._batches_for_step()):
                self._end_epoch()
        if self._stop_requested() and not self._done():
            return self._stop_for_signal()
        self._checkpoint_now()
        self._print(f"done: step {self.step}, epoch {self.epoch}; checkpoints in {self.ckpt.folder}")
        return EXIT_OK

    def _stop_for_signal(self) -> int:
        self._checkpoint_now()
        self._print(f"saved step {self.step} to {self.ckpt.folder}; run the same command to resume.")
        return EXIT_OK

    def _update_bar(self, bar: Any, outcome: StepOutcome) -> None:
        if bar is None:
            return
        if self.settings.max_seconds is not None:
            bar.total = self._expected_total()
        bar.update(1)
        shown = self.task.progress_keys
        bar.set_postfix({label: f"{outcome.losses[key]:.3g}" for key, label in shown.items() if key in outcome.losses},
                        refresh=False)

    def _update_emas(self, outcome: StepOutcome) -> None:
        """Each EMA follows its network after a step of the group that optimises it."""
        if not self.emas:
            return
        stepped = {k for g in outcome.stepped for k in self.optim.groups[g].networks}
        for key, ema in self.emas.items():
            if key in stepped:
                ema.update(self.nets[key])

    def _checkpoint_now(self) -> None:
        if self._last_saved_step == self.step:
            return
        metric = self.last_val[1] if self.last_val is not None and self.last_val[0] == self.step else None
        self.save_checkpoint(metric)

    def _after_step(self, outcome: StepOutcome, seconds: float) -> str:
        s = self.settings
        losses = self.dist.mean(outcome.losses)
        self.last_losses.update(losses)
        lr = self.optim.lr()
        action = self.health.after_step(self.step, outcome, losses, lr)
        if self.dist.is_main and (self.step % s.log_every == 0 or self.step == 1):
            row: dict[str, Any] = {"step": self.step, "epoch": self.epoch, "time": time.time(),
                                   "sec_per_step": seconds}
            row.update({f"loss/{k}": v for k, v in losses.items()})
            row.update({f"lr/{k}": v for k, v in lr.items()})
            row.update({f"grad_norm/{k}": v for k, v in outcome.grad_norms.items()})
            row.update(self.health.last_outputs)  # out/…, acc/…, chance/…: what the health checks read
            if outcome.skipped:
                row["skipped"] = sorted(outcome.skipped)
            assert self.run.metrics is not None and self.run.layer_grads is not None
            self.run.metrics.append(row)
            self.run.log_scalars(self.step, {k: v for k, v in row.items() if k not in ("step", "epoch", "time")})
            grads = self.health.last_layer_grads
            if grads:
                self.run.layer_grads.append({"step": self.step, "grads": grads})
        return action

    def _validate(self) -> None:
        """Rank 0 validates; every rank learns whether that made a new best, so all save (and meet) together."""
        self.dist.broadcast_buffers(self.nets)
        new_best = 0
        if self.dist.is_main and self.val_batches:
            metric = self.ckpt.metric

            def is_new_best(metrics: Mapping[str, float]) -> bool:
                value = metrics.get(metric)
                return value is not None and math.isfinite(value) and self.ckpt.is_better(value)

            result = run_validation(self.task, self._nets_for_inference(), self.val_batches, self.device, self.step,
                                    self.run.samples, is_new_best)
            value = result.metrics.get(metric)
            if value is not None and math.isfinite(value):
                self.last_val = (self.step, value)
                self._print(f"step {self.step}: {metric} {value:.4f}")
                new_best = int(self.ckpt.is_better(value))
            assert self.run.validation is not None
            groups = list(dict.fromkeys(item.group for item in result.media if item.role != "reference"))
            self.run.validation.append({"step": self.step, "epoch": self.epoch, **result.metrics, "samples": groups})
            self.run.log_scalars(self.step, result.metrics)
            log_media(self.run.tensorboard, self.step, result.media)
        if self.dist.agree_max(new_best):
            self._checkpoint_now()

    def _rollback(self) -> None:
        """Restore the newest checkpoint and lower the learning rates; repeated rollbacks to the same
        checkpoint compound the reduction (the factor applies to the checkpoint's own rates)."""
        self._rollback_scale *= self.health.rollback_lr_factor
        scale = self._rollback_scale
        found = self.ckpt.latest_loadable(map_location=self.device, set_aside=self.dist.is_main)
        if found is not None:
            path, state = found
            self.load_state_dict(state)
            if self.dist.is_main:
                self.run.truncate_logs_after(self.step)
                self._report_set_aside()
            self._print(f"rolled back to {path.name} (step {self.step}); learning rates × {scale:g}")
        else:
            self._print(f"no checkpoint to roll back to; learning rates × {scale:g} and training on")
            scale = self.health.rollback_lr_factor  # the live rates already carry earlier reductions
        self.optim.scale_lr(scale)
