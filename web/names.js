// Call ids nobody has to invent: three short words such as "amber-fox-river"
// for each side of a "New call". 256 words make one byte per word, so
// crypto.getRandomValues picks each word without bias; three words give
// sixteen million ids, plenty for the short life of a call's ids.

const WORDS = `
  acorn acre amber anchor apple arch arrow aspen atlas aurora autumn badge
  bagel bamboo banjo barley basil basin bay beach beacon bean bear berry
  birch bison bloom blue boat bolt bonsai brave breeze brick brook bubble
  cabin cactus cake camel candle canoe canyon cape carrot castle cedar cello
  chalk cherry cider clay cliff cloud clover coast cobalt cobra cocoa comet
  coral cosmic cosmos cotton cove crane creek crisp crow cube daisy dawn
  delta desert dew dingo dolphin dove dragon drum dune dusk eagle echo
  ember fable falcon fern fiddle field fig finch fjord flame flint flute
  fog forest fox frost gale garden gecko giant ginger glade glen glow
  goose granite grape gravel grove gull harbor hare hazel heron hill honey
  horizon iris island ivory jade jasmine jelly kayak kelp kettle kite kiwi
  koala lagoon lake lantern lark lava lemon lemur lilac lily lime linen
  loom lotus lunar lynx mango maple marble meadow melon mint misty mocha
  moon moss moth nectar nest nimbus noble north nova nutmeg oak oasis
  ocean olive onyx orbit orca orchid otter owl palm panda paper parrot
  peach pearl pebble pecan pepper pine pixel plaza plum polar pony poppy
  prairie puffin puma quail quartz quiet rabbit rain raven reed reef ridge
  river robin rocket rose ruby saffron sage sail salmon sand satin seal
  shell sierra silver sky sloth snow solar sparrow spice sprout spruce squid
  star stone storm sugar summit sun swan tango thistle thunder tiger topaz
  trout tulip tundra turtle velvet violet waffle walnut wave willow wind wren
  yak zebra zest zinc`.trim().split(/\s+/);

// random(bytes) fills a Uint8Array; the browser's crypto.getRandomValues in
// the page, anything of the same shape in a test.
export function readableId(random = (b) => crypto.getRandomValues(b)) {
  const bytes = random(new Uint8Array(3));
  return Array.from(bytes, (b) => WORDS[b]).join('-');
}

// Two different ids, one for each side of a new call.
export function newCallIds(random) {
  const me = readableId(random);
  let peer = readableId(random);
  while (peer === me) peer = readableId(random);
  return { me, peer };
}

export const WORD_COUNT = WORDS.length;
