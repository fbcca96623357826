"""RoPE-relevant fields of public model config.json files, as published, each with its source; read by notebook 13
and the doctor's tests.

``SHIPPED`` maps a short model name to one record:

- ``source``: the Hugging Face ``config.json`` the fields come from;
- ``advertised_context``: the context length (int tokens) the model card or release notes advertise ("128K" is
  read as 131072, the convention those cards use alongside their configs);
- ``advertised_source``: where that claim is made;
- ``config``: the RoPE-relevant subset of the file, keys and values as published (v4 ``rope_scaling`` /
  ``rope_theta`` or v5 ``rope_parameters``; ``type`` vs ``rope_type`` and int vs float kept as published; a
  published ``null`` is ``None``; a key the file does not have is absent);
- ``verified_against``: the public copies of the file the values were checked against (the Hub itself was not
  reachable when this module was written, so every value was checked against vendored copies of the file);
- optionally ``note``, ``unverified`` (keys that no reachable source confirmed) and, for Gemma-3,
  ``implied_defaults`` (values transformers' config class supplies because the file omits them).

Facts only: the records hold published numbers, and nothing in this module computes anything.
"""

SHIPPED: dict[str, dict] = {
    "Llama-3.1-8B": {
        "source": "https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json",
        "advertised_context": 131072,
        "advertised_source": "https://huggingface.co/meta-llama/Llama-3.1-8B",
        "config": {
            "model_type": "llama",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "max_position_embeddings": 131072,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
        },
        "verified_against": [
            "github.com/citsjtu2020/LLM-Prof sglang/Model_Config.md (verbatim Llama-3.1-8B config.json)",
            "vllm-based example printing LlamaConfig for meta-llama/Llama-3.1-8B (transformers 4.45.2)",
        ],
        "note": "The published file has no head_dim key (128 = hidden_size / num_attention_heads); configs printed by "
        "newer transformers add head_dim, the file does not.",
    },
    "Llama-3.2-1B": {
        "source": "https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json",
        "advertised_context": 131072,
        "advertised_source": "https://huggingface.co/meta-llama/Llama-3.2-1B",
        "config": {
            "model_type": "llama",
            "hidden_size": 2048,
            "num_attention_heads": 32,
            "head_dim": 64,
            "max_position_embeddings": 131072,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "factor": 32.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
        },
        "verified_against": [
            "github.com/kevinstephano/thunder_model_blocks hf_llama/llama_config.py "
            "(Llama-3.2-1B-Instruct config.json, commit 4e20de36)",
            "other GitHub copies of the Llama-3.2-1B config.json (same RoPE fields)",
        ],
        "note": "Checked against copies of the Llama-3.2-1B(-Instruct) file; base and Instruct share these fields.",
    },
    "Qwen2.5-7B-Instruct-YaRN4x": {
        "source": "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json",
        "advertised_context": 131072,
        "advertised_source": "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct#processing-long-texts",
        "config": {
            "model_type": "qwen2",
            "hidden_size": 3584,
            "num_attention_heads": 28,
            "max_position_embeddings": 32768,
            "rope_theta": 1000000.0,
            "rope_scaling": {
                "factor": 4.0,
                "original_max_position_embeddings": 32768,
                "type": "yarn",
            },
            "sliding_window": 131072,
        },
        "verified_against": [
            "GitHub dump of Qwen/Qwen2.5-7B-Instruct config.json (transformers_version 4.43.1)",
            "thunder_model_blocks and vllm printouts of the loaded Qwen2Config for Qwen/Qwen2.5-7B-Instruct",
            "Qwen2.5 model-card 'Processing Long Texts' snippet, in several vendored READMEs",
        ],
        "note": "rope_scaling is NOT in the published file (it has no rope_scaling key at all; loaded configs print "
        "null): the model card tells users to add {'factor': 4.0, 'original_max_position_embeddings': 32768, "
        "'type': 'yarn'} to reach 131,072 tokens, and it is recorded here added. sliding_window is published but "
        "inactive: the file also sets use_sliding_window false.",
    },
    "Qwen3-8B": {
        "source": "https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json",
        "advertised_context": 32768,
        "advertised_source": "https://huggingface.co/Qwen/Qwen3-8B",
        "config": {
            "model_type": "qwen3",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "head_dim": 128,
            "max_position_embeddings": 40960,
            "rope_theta": 1000000,
            "rope_scaling": None,
            "sliding_window": None,
        },
        "verified_against": [
            "github.com/citsjtu2020/LLM-Prof sglang/Model_Config.md (verbatim Qwen3-8B config.json, "
            "transformers_version 4.51.0)",
        ],
        "note": "The card: 'Context Length: 32,768 natively and 131,072 tokens with YaRN'; max_position_embeddings "
        "40960 is 32,768 of context plus 8,192 reserved for output. rope_theta is published as an int.",
    },
    "Qwen3-8B-YaRN": {
        "source": "https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json",
        "advertised_context": 131072,
        "advertised_source": "https://huggingface.co/Qwen/Qwen3-8B#processing-long-texts",
        "config": {
            "model_type": "qwen3",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "head_dim": 128,
            "max_position_embeddings": 40960,
            "rope_theta": 1000000,
            "rope_scaling": {
                "rope_type": "yarn",
                "factor": 4.0,
                "original_max_position_embeddings": 32768,
            },
            "sliding_window": None,
        },
        "verified_against": [
            "github.com/citsjtu2020/LLM-Prof sglang/Model_Config.md (verbatim Qwen3-8B config.json)",
            "Qwen3 model-card 'Processing Long Texts' snippet, in several vendored READMEs",
        ],
        "note": "The published file has rope_scaling null; the rope_scaling here is the one the model card tells "
        "users to add to config.json for 131,072 tokens.",
    },
    "DeepSeek-V3": {
        "source": "https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json",
        "advertised_context": 131072,
        "advertised_source": "https://huggingface.co/deepseek-ai/DeepSeek-V3",
        "config": {
            "model_type": "deepseek_v3",
            "hidden_size": 7168,
            "num_attention_heads": 128,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "kv_lora_rank": 512,
            "max_position_embeddings": 163840,
            "rope_theta": 10000,
            "rope_scaling": {
                "beta_fast": 32,
                "beta_slow": 1,
                "factor": 40,
                "mscale": 1.0,
                "mscale_all_dim": 1.0,
                "original_max_position_embeddings": 4096,
                "type": "yarn",
            },
        },
        "verified_against": [
            "GitHub dataclass transcribing deepseek-ai/DeepSeek-V3 config.json (cites that URL)",
            "GitHub copy of the DeepSeek-R1 config.json (same architecture, identical RoPE fields)",
        ],
        "note": "Card: 'Context Length 128K'. rope_theta, factor, beta_fast and beta_slow are published as ints.",
    },
    "Phi-3.5-mini-instruct": {
        "source": "https://huggingface.co/microsoft/Phi-3.5-mini-instruct/blob/main/config.json",
        "advertised_context": 131072,
        "advertised_source": "https://huggingface.co/microsoft/Phi-3.5-mini-instruct",
        "config": {
            "model_type": "phi3",
            "hidden_size": 3072,
            "num_attention_heads": 32,
            "max_position_embeddings": 131072,
            "original_max_position_embeddings": 4096,
            "rope_theta": 10000.0,
            "rope_scaling": {
                "long_factor": [
                    1.0800000429153442,
                    1.1100000143051147,
                    1.1399999856948853,
                    1.340000033378601,
                    1.5899999141693115,
                    1.600000023841858,
                    1.6200000047683716,
                    2.620000123977661,
                    3.2300000190734863,
                    3.2300000190734863,
                    4.789999961853027,
                    7.400000095367432,
                    7.700000286102295,
                    9.09000015258789,
                    12.199999809265137,
                    17.670000076293945,
                    24.46000099182129,
                    28.57000160217285,
                    30.420001983642578,
                    30.840002059936523,
                    32.590003967285156,
                    32.93000411987305,
                    42.320003509521484,
                    44.96000289916992,
                    50.340003967285156,
                    50.45000457763672,
                    57.55000305175781,
                    57.93000411987305,
                    58.21000289916992,
                    60.1400032043457,
                    62.61000442504883,
                    62.62000274658203,
                    62.71000289916992,
                    63.1400032043457,
                    63.1400032043457,
                    63.77000427246094,
                    63.93000411987305,
                    63.96000289916992,
                    63.970001220703125,
                    64.02999877929688,
                    64.06999969482422,
                    64.08000183105469,
                    64.12000274658203,
                    64.41000366210938,
                    64.4800033569336,
                    64.51000213623047,
                    64.52999877929688,
                    64.83999633789062,
                ],
                "short_factor": [
                    1.0,
                    1.0199999809265137,
                    1.0299999713897705,
                    1.0299999713897705,
                    1.0499999523162842,
                    1.0499999523162842,
                    1.0499999523162842,
                    1.0499999523162842,
                    1.0499999523162842,
                    1.0699999332427979,
                    1.0999999046325684,
                    1.1099998950958252,
                    1.1599998474121094,
                    1.1599998474121094,
                    1.1699998378753662,
                    1.2899998426437378,
                    1.339999794960022,
                    1.679999828338623,
                    1.7899998426437378,
                    1.8199998140335083,
                    1.8499997854232788,
                    1.8799997568130493,
                    1.9099997282028198,
                    1.9399996995925903,
                    1.9899996519088745,
                    2.0199997425079346,
                    2.0199997425079346,
                    2.0199997425079346,
                    2.0199997425079346,
                    2.0199997425079346,
                    2.0199997425079346,
                    2.0299997329711914,
                    2.0299997329711914,
                    2.0299997329711914,
                    2.0299997329711914,
                    2.0299997329711914,
                    2.0299997329711914,
                    2.0299997329711914,
                    2.0299997329711914,
                    2.0299997329711914,
                    2.0799996852874756,
                    2.0899996757507324,
                    2.189999580383301,
                    2.2199995517730713,
                    2.5899994373321533,
                    2.729999542236328,
                    2.749999523162842,
                    2.8399994373321533,
                ],
                "type": "longrope",
            },
            "sliding_window": 262144,
        },
        "verified_against": [
            "GitHub onnx-export example embedding the Phi-3.5-mini-instruct config.json (cites that URL)",
            "github.com/kevinstephano/thunder_model_blocks Phi-3.5 rope block (verbatim config.json string, "
            "_name_or_path microsoft/Phi-3.5-mini-instruct, transformers_version 4.46.3)",
            "third GitHub copy with both factor lists on single lines",
        ],
        "note": "These are Phi-3.5-mini-instruct's own 48 + 48 LongRoPE factors (not Phi-3-mini-128k's), "
        "compared value by value across the copies listed. 48 = head_dim (3072 / 32 = 96) / 2.",
    },
    "Gemma-3-4b-it": {
        "source": "https://huggingface.co/google/gemma-3-4b-it/blob/main/config.json",
        "advertised_context": 131072,
        "advertised_source": "https://huggingface.co/google/gemma-3-4b-it",
        "config": {
            "model_type": "gemma3_text",
            "hidden_size": 2560,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "sliding_window": 1024,
        },
        "implied_defaults": {
            "num_attention_heads": 8,
            "head_dim": 256,
            "max_position_embeddings": 131072,
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
            "sliding_window_pattern": 6,
        },
        "verified_against": [
            "two GitHub test fixtures quoting google/gemma-3-4b-it config.json (transformers_version 4.50.0.dev0)",
            "Gemma3TextConfig defaults as mirrored in GitHub copies of the transformers 4.50 config class",
        ],
        "note": "config is the text_config of the multimodal file. The published text_config names only "
        "hidden_size, intermediate_size, model_type, num_hidden_layers, rope_scaling and sliding_window; every "
        "other field, including num_attention_heads, head_dim, rope_theta, rope_local_base_freq, "
        "max_position_embeddings and sliding_window_pattern, is absent and comes from transformers' "
        "Gemma3TextConfig defaults (v4.50), recorded in implied_defaults rather than as published. The linear "
        "factor 8.0 applies to the global (full-attention) layers only; local layers use rope_local_base_freq.",
    },
    "gpt-oss-20b": {
        "source": "https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json",
        "advertised_context": 131072,
        "advertised_source": "https://openai.com/index/introducing-gpt-oss/",
        "config": {
            "model_type": "gpt_oss",
            "num_hidden_layers": 24,
            "hidden_size": 2880,
            "num_attention_heads": 64,
            "head_dim": 64,
            "max_position_embeddings": 131072,
            "rope_theta": 150000,
            "rope_scaling": {
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "factor": 32.0,
                "original_max_position_embeddings": 4096,
                "rope_type": "yarn",
                "truncate": False,
            },
            "sliding_window": 128,
            "layer_types": ["sliding_attention", "full_attention"] * 12,
        },
        "verified_against": [
            "github.com/EchoCog/gpt-oss-20b config.json (mirror of the 20b file; only quant_method differs)",
            "GitHub test fixture quoting openai/gpt-oss-120b raw config.json (identical rope_scaling)",
        ],
        "note": "layer_types is the published 24-entry list, alternating and starting with sliding_attention. "
        "rope_theta is published as an int. The file also has initial_context_length 4096.",
    },
    "Mistral-7B-v0.3": {
        "source": "https://huggingface.co/mistralai/Mistral-7B-v0.3/blob/main/config.json",
        "advertised_context": 32768,
        "advertised_source": "https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.2",
        "config": {
            "model_type": "mistral",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "max_position_embeddings": 32768,
            "rope_theta": 1000000.0,
            "sliding_window": None,
        },
        "verified_against": [
            "GitHub dump of a Mistral-7B v0.3 config.json (vocab_size 32768, transformers_version 4.42.0.dev0)",
            "GitHub transcription of mistralai/Mistral-7B-Instruct-v0.3 config.json (cites that URL)",
        ],
        "note": "The published file has no head_dim (128 = hidden_size / num_attention_heads) and no rope_scaling "
        "key. The v0.3 card only lists the vocabulary change; the 32k context, rope_theta 1e6 and no sliding window "
        "are the v0.2 changes, stated on the v0.2 card (advertised_source).",
        "unverified": ["advertised_context"],
    },
    "Kimi-K2-Instruct": {
        "source": "https://huggingface.co/moonshotai/Kimi-K2-Instruct/blob/main/config.json",
        "advertised_context": 131072,
        "advertised_source": "https://huggingface.co/moonshotai/Kimi-K2-Instruct",
        "config": {
            "model_type": "kimi_k2",
            "hidden_size": 7168,
            "num_attention_heads": 64,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "kv_lora_rank": 512,
            "max_position_embeddings": 131072,
            "rope_theta": 50000.0,
            "rope_scaling": {
                "beta_fast": 1.0,
                "beta_slow": 1.0,
                "factor": 32.0,
                "mscale": 1.0,
                "mscale_all_dim": 1.0,
                "original_max_position_embeddings": 4096,
                "type": "yarn",
            },
        },
        "verified_against": [
            "GitHub K2-family config.json derived from the original (identical rope_theta and rope_scaling block)",
            "GitHub Kimi-K2 config dataclass and a patch script 'for Kimi K2-Instruct' (same values)",
            "GitHub notes citing moonshotai/Kimi-K2-Instruct config.json (64 heads, kv_lora_rank 512, RoPE dim 64)",
        ],
        "note": "DeepSeek-V3 architecture (DeepseekV3ForCausalLM). No verbatim copy of this exact file was found; "
        "each value agrees across the secondary copies listed. The later Kimi-K2-Instruct-0905 differs "
        "(factor 64.0, 262144 positions); its card says the window grew 'from 128k to 256k'.",
    },
    "GLM-5.1": {
        "source": "https://huggingface.co/zai-org/GLM-5.1/blob/main/config.json",
        "advertised_context": 200000,
        "advertised_source": "https://docs.z.ai/guides/llm/glm-5.1",
        "config": {
            "model_type": "glm_moe_dsa",
            "hidden_size": 6144,
            "num_attention_heads": 64,
            "head_dim": 64,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 192,
            "kv_lora_rank": 512,
            "max_position_embeddings": 202752,
            "rope_parameters": {"rope_theta": 1000000, "rope_type": "default"},
        },
        "verified_against": [
            "GitHub model report quoting the original GLM-5.1 config.json (transformers_version 5.4.0)",
            "GitHub test pinning the upstream GLM-5 and GLM-5.1 config.json signatures (fetched 2026-04-07)",
        ],
        "note": "Published in transformers v5 spelling: rope_parameters, no top-level rope_theta or rope_scaling. "
        "The docs advertise '200K', recorded as 200000 (not a power-of-two convention).",
    },
}
