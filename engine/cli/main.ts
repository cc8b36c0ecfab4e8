/**
 * `memgen`: the headless command line. Usage errors exit 2, failures exit 1, an interrupted
 * command 130, success 0. MEMGEN_DEBUG=1 prints stack traces of failures.
 */
import { RunError } from '../runs/run';
import { UsageError } from './args';
import { ANALYZE_HELP, analyzeCommand } from './commands/analyze';
import { DEMO_HELP, demoCommand } from './commands/demo';
import { EXPORT_HELP, exportCommand } from './commands/export';
import { PRETRAIN_HELP, pretrainCommand } from './commands/pretrain';
import { MERGE_HELP, mergeCommand } from './commands/merge';
import { INSPECT_HELP, evalCommand, forwardCommand, generateCommand } from './commands/inspect';
import { REPORT_HELP, reportCommand } from './commands/report';
import { REPRODUCE_HELP, reproduceCommand } from './commands/reproduce';
import { ROBUSTNESS_HELP, robustnessCommand } from './commands/robustness';
import { STEER_HELP, steerEvalCommand, sweepCommand } from './commands/steer';
import { TRAIN_HELP, trainCommand } from './commands/train';

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  demo: demoCommand,
  train: trainCommand,
  pretrain: pretrainCommand,
  generate: generateCommand,
  forward: forwardCommand,
  eval: evalCommand,
  analyze: analyzeCommand,
  merge: mergeCommand,
  'steer-eval': steerEvalCommand,
  sweep: sweepCommand,
  export: exportCommand,
  robustness: robustnessCommand,
  report: reportCommand,
  reproduce: reproduceCommand,
};

const HELP = `memgen — train, analyse and steer memorization vs generalization

Usage: memgen <command> [options]

Commands:
${DEMO_HELP}
${TRAIN_HELP}
${PRETRAIN_HELP}
${INSPECT_HELP}
${ANALYZE_HELP}
${MERGE_HELP}
${STEER_HELP}
${EXPORT_HELP}
${ROBUSTNESS_HELP}
${REPORT_HELP}
${REPRODUCE_HELP}
  help      This text.
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    console.log(HELP);
    return cmd === undefined ? 2 : 0;
  }
  const run = COMMANDS[cmd];
  try {
    if (!run) throw new UsageError(`unknown command '${cmd}'. Commands: ${Object.keys(COMMANDS).join(', ')}, help`);
    return await run(rest);
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError) {
      console.error(`memgen: ${err.message}\nRun \`memgen help\` for usage.`);
      return 2;
    }
    console.error(`memgen: ${err.message}`);
    if (process.env.MEMGEN_DEBUG && !(err instanceof RunError)) console.error(err.stack);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
