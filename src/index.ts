// Public API of dualmodule: the runtime and its kernels, recurrent layers, and dual-module inference.
export { Runtime, type RuntimeOptions } from "./runtime/runtime.js";
export { enableRelaxedSimd, hasRelaxedSimd, type SimdVariant } from "./runtime/wasm.js";
export { type Kernels, reference } from "./kernels/index.js";

export { Stack, type StackConfig, type CellKind, type LayerWeights } from "./recurrent/stack.js";
export { Lstm, type LstmWeights, type BigBits } from "./recurrent/lstm.js";
export { Gru, type GruWeights } from "./recurrent/gru.js";

export { DualModel, type Thresholds, type SelectMode, type NoiseInjection } from "./recurrent/dual.js";
export { fitLittleModules, type FitOptions, type FitReport } from "./recurrent/fit.js";
export { LittleModule } from "./recurrent/little.js";
export { type Bits } from "./dual/quantize.js";
export { jlDim } from "./dual/projection.js";
export { type AccountingReport } from "./dual/accounting.js";
export { saveDualModel, loadDualModel, type SaveOptions, type LoadOptions } from "./recurrent/dual-checkpoint.js";

export { ResNet, resnet18Small, resnet18ImageNet, type ResNetConfig, type ResNetWeights } from "./conv/resnet.js";
export { runtimeBackend } from "./conv/layers.js";
export { loadResNet, saveResNet } from "./conv/checkpoint.js";
export { DualResNet, type DualResNetOptions, type DualResNetReport } from "./conv/dual.js";
export { saveDualResNet, loadDualResNet } from "./conv/dual-checkpoint.js";
export { runtimeDualBackend, type InsensitiveOutput } from "./conv/dual-conv.js";

// Language models from elsewhere: PyTorch word_language_model state_dicts (safetensors) or ONNX exports, and the corpus layout of its example.
export { loadLanguageModel, lmFromStateDict, type LoadedLm, type LoadLmOptions } from "./recurrent/import.js";
export { lmFromOnnx } from "./recurrent/import-onnx.js";
export { LmInference, type LmConfig } from "./recurrent/lm.js";
export { openLm, type OpenedLm, type OpenLmOptions } from "./recurrent/open.js";
export { perplexity, type PerplexityResult } from "./recurrent/eval.js";
export { loadWordCorpus, wordCorpus, type WordCorpus } from "./data/word-corpus.js";
// ResNets from ONNX exports, and images from folders in torchvision's ImageFolder layout.
export { loadResNetOnnx, resnetFromOnnx, type ResNetOnnxOptions } from "./conv/import-onnx.js";
export { openImageFolder, listImageFolder, readImageInput, type ImageSource, type ImageInputOptions, type ImageFolderListing } from "./data/image-folder.js";
export { loadImageSet, imageSetSource, type ImageSet, type ImageDataset } from "./data/images.js";

// Translation (issue 17): parallel text, the shared byte-pair encoding, corpus BLEU as sacreBLEU computes it.
export { loadBible, loadPairs, readPairs, parsePairs, splitPairs, pairStats, BIBLE_FILE, BIBLE_SPLIT, type ParallelCorpus, type SentencePair, type BlockSplit } from "./data/pairs.js";
export { Bpe, learnBpe, learnSharedBpe, saveBpe, loadBpe, normalizeText, BPE_METADATA_KEY, DEFAULT_BPE_VOCAB, PAD_ID, BOS_ID, EOS_ID, type BpeJson } from "./seq2seq/bpe.js";
export { NmtModel, greedyDecode, beamDecode, translateLine, BEAM_DEFAULTS, type BeamOptions, type Decode } from "./seq2seq/translate.js";
export { saveNmt, loadNmt, type GnmtConfig, type NmtCheckpoint } from "./seq2seq/gnmt.js";
export { trainNmt } from "./seq2seq/train.js";
export { openNmt, fitDualDecoder } from "./seq2seq/open.js";
export { evaluateNmt } from "./seq2seq/dual.js";
export { corpusBleu, bleuFromStatistics, formatBleu, tokenize13a, SACREBLEU_VERSION, type BleuScore, type BleuOptions } from "./seq2seq/bleu.js";
export {
  DualDecoder, DenseOutputLayer, fitPreview, topLayerOutputs, greedy, sampleCandidates, candidateSoftmax, DUAL_DECODER_DEFAULTS,
  type Candidates, type OutputLayer, type PreviewFactors, type DualDecoderOptions, type SampleOptions,
} from "./recurrent/dual-decoder.js";
export { decoderQuality, evaluateDecoder, timeTokens, generate, type DecoderQuality, type TokenTimes, type TokenSplit, type GenerateOptions } from "./recurrent/eval.js";
