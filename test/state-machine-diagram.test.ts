import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  currentDiagram,
  DIAGRAM_BEGIN,
  DIAGRAM_END,
  OPERATORS_DOC,
  renderDiagramIntoDoc,
  stateMachineDiagram,
} from '../scripts/state-machine-diagram.ts';

describe('docs/operators.md', () => {
  it('shows the diagram of the state machine the construct synthesizes now', () => {
    const doc = readFileSync(OPERATORS_DOC, 'utf8');
    expect(renderDiagramIntoDoc(doc, currentDiagram()), 'docs/operators.md: the state machine diagram is out of date; run `npm run docs:diagram`').toBe(doc);
  });
});

/** The generator on a small definition. */
describe('the state machine diagram', () => {
  const definition = {
    StartAt: 'Do work',
    States: {
      'Do work': { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:123456789012:function:Work', Next: 'Done?', Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Failed' }] },
      'Done?': {
        Type: 'Choice',
        Choices: [
          { Variable: '$.work.finished', BooleanEquals: true, Next: 'Finished' },
          { Variable: '$.work.calls', NumericGreaterThanEquals: 10, Next: 'Pause' },
        ],
        Default: 'Do work',
      },
      Pause: { Type: 'Wait', Seconds: 5, Next: 'Do work' },
      Finished: { Type: 'Succeed' },
      Failed: { Type: 'Fail' },
    },
  };

  it('draws a node per state, shaped by type, and an edge per transition, choice rule and catch', () => {
    expect(stateMachineDiagram(definition)).toBe(
      [
        '```mermaid',
        'flowchart TD',
        '  start((start)) --> s_Do_work',
        '  s_Do_work["Do work"]',
        '  s_Done{"Done?"}',
        '  s_Pause[/"Pause"/]',
        '  s_Finished(["Finished"])',
        '  s_Failed(["Failed"])',
        '  s_Do_work --> s_Done',
        '  s_Do_work -.->|any error| s_Failed',
        '  s_Done -->|work.finished = true| s_Finished',
        '  s_Done -->|work.calls ≥ 10| s_Pause',
        '  s_Done -->|otherwise| s_Do_work',
        '  s_Pause --> s_Do_work',
        '```',
      ].join('\n'),
    );
  });

  it('refuses what it cannot draw instead of drawing it wrong', () => {
    const and = { ...definition, States: { ...definition.States, 'Done?': { Type: 'Choice', Choices: [{ And: [], Next: 'Finished' }] } } };
    expect(() => stateMachineDiagram(and)).toThrow(/Choice "Done\?" has a rule the diagram cannot draw/);
    const dangling = { ...definition, States: { ...definition.States, Pause: { Type: 'Wait', Next: 'Nowhere' } } };
    expect(() => stateMachineDiagram(dangling)).toThrow(/transition to "Nowhere"/);
    const twins = { ...definition, States: { ...definition.States, 'Done!': { Type: 'Succeed' } } };
    expect(() => stateMachineDiagram(twins)).toThrow('The states "Done?" and "Done!" would share the diagram id s_Done');
  });

  it('renders between the markers and nowhere else, and refuses a document without them', () => {
    const doc = `# Title\n\n${DIAGRAM_BEGIN}\nold\n${DIAGRAM_END}\n\nafter\n`;
    const rendered = renderDiagramIntoDoc(doc, 'new');
    expect(rendered).toBe(`# Title\n\n${DIAGRAM_BEGIN}\nnew\n${DIAGRAM_END}\n\nafter\n`);
    expect(renderDiagramIntoDoc(rendered, 'new')).toBe(rendered);
    expect(() => renderDiagramIntoDoc('# no diagram\n', 'new')).toThrow(/no state-machine-diagram markers/);
  });
});
