"""TF op families with no PyTorch meaning, each with the one-line reason `to-ir` gives when it
meets one (exit 4) and the README's op table lists. A family is named by op types and by
prefixes of op type names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    ops: tuple[str, ...]  # exact op types
    prefixes: tuple[str, ...]  # op types starting with one of these
    reason: str


FAMILIES = (
    Family("strings", ("AsString", "Substr", "DecodeBase64", "EncodeBase64", "ReduceJoin",
                       "UnicodeDecode", "UnicodeDecodeWithOffsets", "UnicodeEncode",
                       "UnicodeScript", "UnicodeTranscode", "StaticRegexReplace",
                       "StaticRegexFullMatch", "DecodeRaw", "DecodeCSV", "ParseExample",
                       "ParseExampleV2", "ParseSingleExample"),
           ("String", "Regex", "DecodeJpeg", "DecodePng", "DecodeImage", "EncodeJpeg",
            "EncodePng"),
           "works on strings, which PyTorch tensors cannot hold (preprocess outside the model)"),
    Family("hash tables", ("LookupTableFindV2", "LookupTableImportV2", "LookupTableSizeV2",
                           "LookupTableExportV2", "LookupTableInsertV2", "LookupTableFind",
                           "InitializeTableV2", "InitializeTableFromTextFileV2"),
           ("HashTable", "MutableHashTable", "MutableDenseHashTable", "AnonymousHashTable"),
           "a hash-table lookup has no PyTorch tensor equivalent (map the keys outside the "
           "model)"),
    Family("ragged tensors", (), ("Ragged",),
           "ragged tensors have no PyTorch equivalent (pad to a dense tensor first)"),
    Family("sparse tensors", ("SerializeSparse", "DeserializeSparse", "AddSparseToTensorsMap",
                              "TakeManySparseFromTensorsMap",
                              # (their results are sparse tensors: i23-quant)
                              "DenseToDenseSetOperation", "DenseToSparseSetOperation",
                              "CTCGreedyDecoder", "CTCBeamSearchDecoder"), ("Sparse",),
           "TF's sparse tensors (indices, values, dense_shape) are not converted (densify first)"),
    Family("random numbers", ("RandomUniform", "RandomUniformInt", "RandomStandardNormal",
                              "TruncatedNormal", "ParameterizedTruncatedNormal", "Multinomial",
                              "RandomShuffle", "RandomGamma", "RandomGammaGrad",
                              "RandomPoisson", "RandomPoissonV2", "RandomCrop",
                              "SampleDistortedBoundingBox", "SampleDistortedBoundingBoxV2"),
           ("StatelessRandom", "StatelessTruncatedNormal", "StatelessMultinomial",
            "StatefulStandardNormal", "StatefulUniform", "StatefulTruncatedNormal",
            "StatefulRandomBinomial", "RngSkip", "RngReadAndSkip"),
           "draws from TF's random stream, which torch's generator cannot reproduce (the "
           "numbers would differ)"),
    Family("queues, readers and files", ("ReadFile", "WriteFile", "MatchingFiles"),
           ("Queue", "FIFOQueue", "PaddingFIFOQueue", "RandomShuffleQueue", "PriorityQueue",
            "ReaderRead", "TFRecordReader", "TextLineReader", "Iterator"),
           "reads input data (a queue, a reader or a file), outside what a model computes"),
    Family("tensor lists", ("TensorListGetItem", "TensorListSetItem", "TensorListLength",
                            "TensorListReserve", "TensorListResize", "TensorListPushBack",
                            "TensorListPopBack", "TensorListElementShape", "TensorListConcatV2",
                            "TensorListSplit", "TensorListGather", "TensorListScatterIntoExistingList"),
           ("TensorArray",),
           "a TensorList / TensorArray (TF's growable list of tensors inside a while loop) is "
           "converted only as part of a recognised recurrent layer; on its own it has no PyTorch "
           "tensor equivalent (stack the tensors instead)"),
    Family("cuDNN recurrent layers", (), ("CudnnRNN",),
           "cuDNN's fused RNN kernel has no CPU kernel in TF, so no conversion of it could be "
           "checked (save the model with the Keras LSTM/GRU layer, whose CPU path converts to "
           "nn.LSTM / nn.GRU)"),
    Family("summaries and printing", ("Print", "PrintV2", "ScalarSummary", "HistogramSummary",
                                      "ImageSummary", "AudioSummary", "AudioSummaryV2",
                                      "TensorSummary", "TensorSummaryV2", "MergeSummary"),
           ("WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary",
            "WriteAudioSummary", "WriteSummary", "WriteRawProtoSummary"),
           "logs as a side effect (remove it, or pick an earlier --dst-node)"),
)


def refused_family(op_type: str) -> Family | None:
    for family in FAMILIES:
        if op_type in family.ops or op_type.startswith(family.prefixes):
            return family
    return None
