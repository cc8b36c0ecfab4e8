/**
 * The resumable state of a full-parameter training (GPT-2 runs, the stand-in's pretraining), in one
 * checkpoint folder (RUN/checkpoints/last):
 *   state.safetensors  every parameter `name`, its Adam moments `adam.m.<name>` and `adam.v.<name>`
 *                      (F32); metadata step, and state: the caller's state as JSON (at least step and
 *                      adamT, Adam's step count, plus what else resuming needs: data RNG, the kept
 *                      evaluation), less its timing trainSeconds
 *   state.json         the whole state (trainSeconds too), written after state.safetensors
 * state.safetensors alone is the checkpoint: one file written atomically (temp + rename), so the
 * parameters and the state that goes with them are replaced together. A kill -9 between the two
 * writes leaves state.json one checkpoint behind: loading takes only trainSeconds from it (then a
 * little low), the rest from state.safetensors. (Two files renamed one after the other cannot be
 * replaced together: a checkpoint held in both was refused, or resumed wrongly, after such a kill.)
 * Timing stays out of state.safetensors so that a resumed run's checkpoint is byte-identical to an
 * uninterrupted run's. A checkpoint without metadata.state (written before it) is read with
 * state.json, and refused when their steps disagree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ParamSet } from '../io/params';
import { readSafeTensorsFile, tensorAsFloat32, type TensorToWrite, writeSafeTensorsFile } from '../io/safetensors';
import { RunError, readJSON, writeJSON } from '../runs/run';
import type { Adam } from './optim';

/**
 * The refusal of --resume for a run with no checkpoint (stopped, e.g. killed, before its first one):
 * nothing is lost by starting it again, so it says how.
 */
export function noCheckpointError(dir: string, firstCheckpoint: string, forceDoes = `the old folder is kept as ${path.basename(dir)}.replaced-<time>`): RunError {
  return new RunError(`${dir} has no checkpoint to resume: it stopped before its first checkpoint (${firstCheckpoint}), so nothing is lost by starting it again: ` +
    `run the same command with --force instead of --resume (${forceDoes})`);
}

export interface TrainStateBase {
  step: number;
  adamT: number;
}

export function saveTrainState(ckptDir: string, params: ParamSet, adam: Adam, state: TrainStateBase): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, p] of params) {
    tensors.set(name, { dtype: 'F32', shape: p.shape, data: p.data });
    tensors.set(`adam.m.${name}`, { dtype: 'F32', shape: p.shape, data: adam.state.m.get(name)! });
    tensors.set(`adam.v.${name}`, { dtype: 'F32', shape: p.shape, data: adam.state.v.get(name)! });
  }
  writeSafeTensorsFile(path.join(ckptDir, STATE_TENSORS), tensors, { step: String(state.step), state: exactState(state) });
  writeJSON(path.join(ckptDir, 'state.json'), state);
}

const STATE_TENSORS = 'state.safetensors';

/** Whether `ckptDir` holds a checkpoint (its state.safetensors). */
export const hasTrainState = (ckptDir: string): boolean => fs.existsSync(path.join(ckptDir, STATE_TENSORS));

/** The metadata `state` of a checkpoint file: the caller's state as JSON, less its timing (see the header). */
export function exactState(state: object): string {
  const { trainSeconds: _seconds, ...exact } = state as { trainSeconds?: number };
  void _seconds;
  return JSON.stringify(exact);
}

/**
 * The caller's state of a checkpoint file whose metadata carries it (`state`, JSON; trainSeconds from
 * state.json beside it, 0 without one), else state.json, which must then be from the same step
 * (metadata `step`).
 */
export function checkpointState<S extends { step: number }>(file: string, metadata: Record<string, string>): S {
  const jsonFile = path.join(path.dirname(file), 'state.json');
  if (metadata.state !== undefined) {
    let exact: S;
    try {
      exact = JSON.parse(metadata.state) as S;
    } catch (e) {
      throw new RunError(`checkpoint: ${file} holds an unreadable state (${(e as Error).message})`);
    }
    let trainSeconds = 0;
    try {
      trainSeconds = (JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as { trainSeconds?: number }).trainSeconds ?? 0;
    } catch {
      // no readable state.json (killed before its first write): the seconds so far are unknown
    }
    return { trainSeconds, ...exact };
  }
  const state = readJSON<S>(jsonFile, 'checkpoint');
  if (metadata.step !== String(state.step)) {
    throw new RunError(`checkpoint: ${file} is from step ${metadata.step} but state.json says ${state.step}; the checkpoint is inconsistent`);
  }
  return state;
}

/** Restores `params` and `adam` in place; returns state.json. */
export function loadTrainState<S extends TrainStateBase>(ckptDir: string, params: ParamSet, adam: Adam): S {
  const file = path.join(ckptDir, STATE_TENSORS);
  if (!fs.existsSync(file)) throw new RunError(`checkpoint: ${file} is missing; cannot resume`);
  const st = readSafeTensorsFile(file);
  const state = checkpointState<S>(file, st.metadata);
  for (const [name, p] of params) {
    p.data.set(tensorAsFloat32(st, name));
    adam.state.m.get(name)!.set(tensorAsFloat32(st, `adam.m.${name}`));
    adam.state.v.get(name)!.set(tensorAsFloat32(st, `adam.v.${name}`));
  }
  adam.state.t = state.adamT;
  return state;
}
