/**
 * The resumable state of a full-parameter training (GPT-2 runs, the stand-in's pretraining), in one
 * checkpoint folder (RUN/checkpoints/last):
 *   state.safetensors  every parameter `name`, its Adam moments `adam.m.<name>` and `adam.v.<name>`
 *                      (F32), metadata step
 *   state.json         the caller's state: at least step and adamT (Adam's step count), plus what
 *                      else resuming needs (data RNG, seconds, the kept evaluation)
 * Both files are written atomically; loading refuses a pair whose steps disagree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ParamSet } from '../io/params';
import { readSafeTensorsFile, tensorAsFloat32, type TensorToWrite, writeSafeTensorsFile } from '../io/safetensors';
import { RunError, readJSON, writeJSON } from '../runs/run';
import type { Adam } from './optim';

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
  writeSafeTensorsFile(path.join(ckptDir, 'state.safetensors'), tensors, { step: String(state.step) });
  writeJSON(path.join(ckptDir, 'state.json'), state);
}

/** Restores `params` and `adam` in place; returns state.json. */
export function loadTrainState<S extends TrainStateBase>(ckptDir: string, params: ParamSet, adam: Adam): S {
  const state = readJSON<S>(path.join(ckptDir, 'state.json'), 'checkpoint');
  const file = path.join(ckptDir, 'state.safetensors');
  if (!fs.existsSync(file)) throw new RunError(`checkpoint: ${file} is missing; cannot resume`);
  const st = readSafeTensorsFile(file);
  if (st.metadata.step !== String(state.step)) {
    throw new RunError(`checkpoint: ${file} is from step ${st.metadata.step} but state.json says ${state.step}; the checkpoint is inconsistent`);
  }
  for (const [name, p] of params) {
    p.data.set(tensorAsFloat32(st, name));
    adam.state.m.get(name)!.set(tensorAsFloat32(st, `adam.m.${name}`));
    adam.state.v.get(name)!.set(tensorAsFloat32(st, `adam.v.${name}`));
  }
  adam.state.t = state.adamT;
  return state;
}
