// The summarize task: a short dialogue carrying a few facts; a good summary states every key fact,
// correctly and concisely. As in Dialogsum, completeness correlates with length, so the chosen
// summary is the longer one in about 60% of pairs, and some pairs are labelled wrongly: a scalar
// reward model can learn length as a shortcut. The rejected side includes the errors a policy
// later makes (a wrong name, price or detail, a price the dialogue never gave), and the SFT
// demonstrations are of mixed quality (SFT_MIX), so that preferences teach what SFT did not.
import { Random } from '@s2s/core';
import { type GenerateOptions, type Judgement, type Task, type TaskData, recognizer, words } from './types.js';

const NAMES = ['anna', 'ben', 'carla', 'david', 'emma', 'frank', 'grace', 'henry', 'iris', 'jack', 'kate', 'leo'];
const ACTIONS = ['bought', 'sold', 'lost', 'found', 'painted', 'fixed', 'borrowed', 'cleaned'];
const COLORS = ['red', 'blue', 'green', 'yellow', 'black', 'white'];
const OBJECTS = ['bike', 'lamp', 'chair', 'book', 'coat', 'clock', 'guitar', 'camera', 'table', 'kite'];
const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
const PLACES = ['market', 'park', 'shop', 'station', 'library', 'harbor'];
const PRICES = ['five', 'ten', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'eighty'];
const SMALL_TALK = ['nice weather today', 'that sounds great', 'i am so tired', 'see you later', 'wow , good for you', 'thanks for telling me'];

/** What a summary says besides facts: the words a padded summary adds. */
const FILLER_PREFIXES = ['in summary ,', 'to be honest ,', 'it is worth noting that', 'as we can see ,', 'all in all ,'];
const FILLER_SUFFIXES = ['and that is all .', 'it was a good day .', 'and everyone was very happy .', 'what a story .'];

type Slot = 'name' | 'action' | 'color' | 'object' | 'day' | 'place' | 'price';
const SLOT_VALUES: Record<Slot, readonly string[]> = {
  name: NAMES,
  action: ACTIONS,
  color: COLORS,
  object: OBJECTS,
  day: DAYS,
  place: PLACES,
  price: PRICES,
};
const SLOT_OF = new Map<string, Slot>(
  (Object.entries(SLOT_VALUES) as [Slot, readonly string[]][]).flatMap(([slot, vals]) => vals.map((v) => [v, slot] as [string, Slot])),
);
/** The words a summary needs to state facts; anything else in a summary is filler. */
const SUMMARY_GLUE = new Set(['a', 'at', 'the', 'on', 'for', 'dollars', '.']);

export interface Facts {
  name: string;
  action: string;
  color: string;
  object: string;
  day: string;
  place: string;
  price?: string;
}

// Combinations of colour and object held out of training, for the out-of-distribution split.
const OOD_COMBO = (f: Pick<Facts, 'color' | 'object'>) => (COLORS.indexOf(f.color) + OBJECTS.indexOf(f.object)) % 5 === 0;

type Dialogue = (f: Facts, smallTalk: string) => string;
const priced = (f: Facts, text: (p: string) => string) => (f.price ? text(f.price) : '');

const ID_DIALOGUES: Dialogue[] = [
  (f, s) =>
    `#a# : hello , i am ${f.name} . #b# : hi ${f.name} , what did you do on ${f.day} ? #a# : i ${f.action} a ${f.color} ${f.object} at the ${f.place} .` +
    priced(f, (p) => ` #b# : how much was it ? #a# : ${p} dollars .`) +
    ` #b# : ${s} .`,
  (f, s) =>
    `#b# : how was your ${f.day} , ${f.name} ? #a# : good . i went to the ${f.place} and ${f.action} a ${f.color} ${f.object}` +
    priced(f, (p) => ` for ${p} dollars`) +
    ` . #b# : ${s} .`,
  (f, s) =>
    `#a# : my name is ${f.name} . on ${f.day} i was at the ${f.place} . #b# : what happened ? #a# : i ${f.action} a ${f.color} ${f.object} .` +
    priced(f, (p) => ` it cost ${p} dollars .`) +
    ` #b# : ${s} .`,
  (f, s) =>
    `#b# : ${s} . #a# : yes . i ${f.action} my ${f.color} ${f.object} on ${f.day} . #b# : where ? #a# : at the ${f.place}` +
    priced(f, (p) => ` , for ${p} dollars`) +
    ` . #b# : i see , ${f.name} .`,
];

const OOD_DIALOGUES: Dialogue[] = [
  (f, s) =>
    `#a# : ${s} . #b# : ${f.name} , tell me about the ${f.object} . #a# : it is ${f.color} . i ${f.action} it on ${f.day} at the ${f.place}` +
    priced(f, (p) => ` for ${p} dollars`) +
    ` .`,
  (f, s) =>
    `#b# : was ${f.day} busy for you , ${f.name} ? #a# : yes . at the ${f.place} i ${f.action} a ${f.object} . #b# : what color ? #a# : ${f.color} .` +
    priced(f, (p) => ` the price was ${p} dollars .`) +
    ` #b# : ${s} .`,
];

function makeFacts(rng: Random, split: 'id' | 'ood'): Facts {
  for (;;) {
    const action = rng.pick(ACTIONS);
    const f: Facts = {
      name: rng.pick(NAMES),
      action,
      color: rng.pick(COLORS),
      object: rng.pick(OBJECTS),
      day: rng.pick(DAYS),
      place: rng.pick(PLACES),
      // prices only come with buying and selling
      price: (action === 'bought' || action === 'sold') && rng.chance(0.7) ? rng.pick(PRICES) : undefined,
    };
    if (OOD_COMBO(f) === (split === 'ood')) return f;
  }
}

function prompt(f: Facts, rng: Random, split: 'id' | 'ood'): string {
  const dialogue = rng.pick(split === 'id' ? ID_DIALOGUES : OOD_DIALOGUES)(f, rng.pick(SMALL_TALK));
  return `summarize : ${dialogue}`;
}

type Optional = 'color' | 'place' | 'day' | 'price';

/** The summary that states the given facts in the canonical order. */
export function summary(f: Facts, omit: ReadonlySet<Optional> = new Set()): string {
  let s = `${f.name} ${f.action} a`;
  if (!omit.has('color')) s += ` ${f.color}`;
  s += ` ${f.object}`;
  if (!omit.has('place')) s += ` at the ${f.place}`;
  if (!omit.has('day')) s += ` on ${f.day}`;
  if (f.price && !omit.has('price')) s += ` for ${f.price} dollars`;
  return `${s} .`;
}

function optionalFacts(f: Facts): Optional[] {
  return (['color', 'place', 'day', 'price'] as const).filter((k) => k !== 'price' || f.price);
}

/** The kinds of summary a preference pair or an SFT reference can hold. */
const variants = {
  full: (f: Facts) => summary(f),
  partial: (f: Facts, rng: Random, n = 1) => summary(f, new Set(rng.sample(optionalFacts(f), n))),
  filler: (f: Facts, rng: Random) => {
    const prefix = rng.chance(0.6) ? `${rng.pick(FILLER_PREFIXES)} ` : '';
    const suffix = !prefix || rng.chance(0.5) ? ` ${rng.pick(FILLER_SUFFIXES)}` : '';
    return `${prefix}${summary(f)}${suffix}`;
  },
  repeated: (f: Facts) => `${summary(f)} ${f.name} ${f.action} a ${f.color} ${f.object} .`,
  /** One fact wrong, or a price the dialogue never mentioned (the plausible invention). */
  hallucinated: (f: Facts, rng: Random) => {
    if (!f.price && rng.chance(0.35)) return summary({ ...f, price: rng.pick(PRICES) });
    const slot = rng.pick(f.price ? (['name', 'color', 'object', 'day', 'place', 'price'] as const) : (['name', 'color', 'object', 'day', 'place'] as const));
    const wrong = rng.pick(SLOT_VALUES[slot].filter((v) => v !== f[slot]));
    return summary({ ...f, [slot]: wrong });
  },
};

/** Parses the facts a summarize prompt carries: every slot word of the dialogue is a fact. */
export function promptFacts(promptText: string): Map<Slot, string> {
  const facts = new Map<Slot, string>();
  for (const w of words(promptText)) {
    const slot = SLOT_OF.get(w);
    if (slot) facts.set(slot, w);
  }
  return facts;
}

/**
 * Gold: the share of the dialogue's facts the summary states, minus 0.25 per hallucinated fact
 * (a slot word the dialogue does not contain), 0.04 per filler word (a word that states no fact)
 * and 0.1 per repeated fact.
 */
export function judgeSummary(promptText: string, response: string): Judgement {
  const facts = promptFacts(promptText);
  const values = new Set(facts.values());
  const said = new Map<string, number>();
  let hallucinated = 0;
  let filler = 0;
  for (const w of words(response)) {
    if (SLOT_OF.has(w)) {
      if (values.has(w)) said.set(w, (said.get(w) ?? 0) + 1);
      else hallucinated++;
    } else if (!SUMMARY_GLUE.has(w)) filler++;
  }
  const covered = said.size;
  const repeated = [...said.values()].reduce((a, n) => a + n - 1, 0);
  const coverage = facts.size ? covered / facts.size : 0;
  const score = coverage - 0.25 * hallucinated - 0.04 * filler - 0.1 * repeated;
  return { score, parts: { coverage, covered, facts: facts.size, hallucinated, filler, repeated, length: words(response).length } };
}

// Pair kinds and their shares: (chosen variant, rejected variant). Complete-vs-incomplete pairs
// make the chosen one longer; padded or repeated rejections make it shorter.
const PAIR_KINDS: Array<{ weight: number; make: (f: Facts, rng: Random) => [string, string] }> = [
  { weight: 0.44, make: (f, rng) => [variants.full(f), variants.partial(f, rng, 1)] },
  { weight: 0.22, make: (f, rng) => [variants.partial(f, rng, 1), variants.partial(f, rng, 2)] },
  { weight: 0.15, make: (f, rng) => [variants.full(f), variants.filler(f, rng)] },
  { weight: 0.04, make: (f) => [variants.full(f), variants.repeated(f)] },
  { weight: 0.15, make: (f, rng) => [variants.full(f), variants.hallucinated(f, rng)] },
];
/** Share of pairs whose labels annotators got wrong. */
const LABEL_NOISE = 0.1;

/**
 * The SFT demonstrations, by varied annotators of mixed care (shares of each kind): fewer than
 * half are flawless, so a policy that always wrote the full summary would beat them about 77% of
 * the time, the paper's margin.
 */
export const SFT_MIX: ReadonlyArray<{ kind: string; weight: number; make: (f: Facts, rng: Random) => string }> = [
  { kind: 'complete', weight: 0.45, make: (f) => variants.full(f) },
  { kind: 'one fact missing', weight: 0.2, make: (f, rng) => variants.partial(f, rng, 1) },
  { kind: 'two facts missing', weight: 0.1, make: (f, rng) => variants.partial(f, rng, 2) },
  { kind: 'padded', weight: 0.12, make: (f, rng) => variants.filler(f, rng) },
  { kind: 'a fact wrong or invented', weight: 0.08, make: (f, rng) => variants.hallucinated(f, rng) },
  { kind: 'repeated', weight: 0.05, make: (f) => variants.repeated(f) },
];

function sftReference(f: Facts, rng: Random): string {
  return SFT_MIX[rng.weighted(SFT_MIX.map((k) => k.weight))].make(f, rng);
}

export const summarize: Task = {
  name: 'summarize',
  version: 2,
  description: 'summarize a short dialogue: state its facts correctly and concisely',

  generate(opts: GenerateOptions): TaskData {
    const rng = new Random(opts.seed * 7919 + 1);
    const id = () => {
      const f = makeFacts(rng, 'id');
      return { f, p: prompt(f, rng, 'id') };
    };
    const sft = Array.from({ length: opts.sft ?? 4000 }, () => {
      const { f, p } = id();
      return { prompt: p, completion: sftReference(f, rng) };
    });
    const pairs = Array.from({ length: opts.pairs ?? 4000 }, () => {
      const { f, p } = id();
      let [chosen, rejected] = PAIR_KINDS[rng.weighted(PAIR_KINDS.map((k) => k.weight))].make(f, rng);
      if (rng.chance(LABEL_NOISE)) [chosen, rejected] = [rejected, chosen];
      return { prompt: p, chosen, rejected };
    });
    const rlPrompts = Array.from({ length: opts.rlPrompts ?? 2000 }, () => ({ prompt: id().p }));
    const evalN = opts.evalPrompts ?? 200;
    return {
      task: 'summarize',
      seed: opts.seed,
      sft,
      pairs,
      rlPrompts,
      eval: {
        id: Array.from({ length: evalN }, () => ({ prompt: id().p })),
        ood: Array.from({ length: evalN }, () => {
          const f = makeFacts(rng, 'ood');
          return { prompt: prompt(f, rng, 'ood') };
        }),
      },
    };
  },

  judge: judgeSummary,

  flaws(prompt: string, response: string): string[] {
    const p = judgeSummary(prompt, response).parts;
    const out: string[] = [];
    if ((p.coverage as number) < 1) out.push('missing fact');
    if ((p.hallucinated as number) > 0) out.push('wrong or invented fact');
    if ((p.filler as number) > 0) out.push('filler');
    if ((p.repeated as number) > 0) out.push('repeated fact');
    return out;
  },

  recognizes(prompt: string): boolean {
    return recognizeSummarize(prompt);
  },

  words(): string[] {
    const all: Facts = { name: NAMES[0], action: 'bought', color: COLORS[0], object: OBJECTS[0], day: DAYS[0], place: PLACES[0], price: PRICES[0] };
    const texts = [
      'summarize :',
      ...[...ID_DIALOGUES, ...OOD_DIALOGUES].flatMap((d) => SMALL_TALK.map((s) => d(all, s))),
      ...FILLER_PREFIXES,
      ...FILLER_SUFFIXES,
      variants.repeated(all),
      ...Object.values(SLOT_VALUES).flat(),
      ...SUMMARY_GLUE,
    ];
    return [...new Set(texts.flatMap(words))].sort();
  },
};

/** A summarize prompt: "summarize : <dialogue>", stating at least one fact, in the task's words. */
const recognizeSummarize = recognizer(summarize, (p) => p.startsWith('summarize : ') && promptFacts(p).size > 0);
