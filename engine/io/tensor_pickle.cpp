#include "io/tensor_pickle.h"

#include <cstdio>
#include <map>

#include "core/error.h"

namespace personaplex {
namespace {

// Bounds far above what a dict of tensors needs; they keep a crafted pickle
// from growing the interpreter's own state.
constexpr size_t kMaxStack = 256, kMaxMemo = 1024, kMaxTuple = 16, kMaxEntries = 64, kMaxString = 1024;
// Values nest (tuples of tuples, copied from the memo): each holds at most
// this many, so copies cannot multiply memory.
constexpr size_t kMaxNodes = 256;

struct Value {
  enum Kind { kMark, kNone, kInt, kBool, kString, kTuple, kDict, kGlobal, kStorage, kTensor, kHooks } kind;
  int64_t i = 0;
  std::string s;  // a string, or a global's "module.name"
  std::vector<Value> items;
  std::vector<std::pair<std::string, PickledTensor>> dict;
  PickledTensor tensor;  // a storage (key, dtype, numel) or a whole tensor
  size_t nodes = 1;      // values inside, this one included
};

const std::map<std::string, at::ScalarType> &storage_types() {
  static const std::map<std::string, at::ScalarType> types = {
      {"torch.FloatStorage", at::kFloat}, {"torch.DoubleStorage", at::kDouble},
      {"torch.HalfStorage", at::kHalf},   {"torch.BFloat16Storage", at::kBFloat16},
      {"torch.LongStorage", at::kLong},   {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort}, {"torch.CharStorage", at::kChar},
      {"torch.ByteStorage", at::kByte},   {"torch.BoolStorage", at::kBool}};
  return types;
}

bool allowed_global(const std::string &g) {
  return g == "torch._utils._rebuild_tensor_v2" || g == "collections.OrderedDict" ||
         g == "torch.jit._pickle.restore_type_tag" || storage_types().count(g) != 0;
}

class Interpreter {
 public:
  Interpreter(const std::string &name, std::string_view p) : name_(name), p_(p) {}

  std::vector<std::pair<std::string, PickledTensor>> run();

 private:
  [[noreturn]] void fail(const std::string &why) const {
    throw Error(name_ + ": not a torch.save dict of tensors: " + why + " (pickle byte " + std::to_string(at_) + ")");
  }
  std::string_view take(size_t n) {
    if (n > p_.size() - pos_) fail("truncated");
    std::string_view s = p_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t little(size_t n) {
    std::string_view s = take(n);
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = v << 8 | uint8_t(s[k]);
    return v;
  }
  void push(Value v) {
    if (stack_.size() >= kMaxStack) fail("stack deeper than " + std::to_string(kMaxStack));
    stack_.push_back(std::move(v));
  }
  Value pop() {
    if (stack_.empty() || stack_.back().kind == Value::kMark) fail("stack underflow");
    Value v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Value &top() {
    if (stack_.empty() || stack_.back().kind == Value::kMark) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Value> pop_to_mark();
  void put(uint64_t index) {
    if (memo_.size() >= kMaxMemo && !memo_.count(index)) fail("memo larger than " + std::to_string(kMaxMemo));
    memo_[index] = top();
  }
  void get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo entry " + std::to_string(index) + " was never stored");
    push(it->second);
  }
  void string(size_t n) {
    if (n > kMaxString) fail("a string of " + std::to_string(n) + " bytes");
    push(Value{Value::kString, 0, std::string(take(n))});
  }
  void global(std::string g) {
    if (!allowed_global(g)) fail("global '" + g + "' is not part of the format");
    push(Value{Value::kGlobal, 0, std::move(g)});
  }
  void tuple(std::vector<Value> items) {
    if (items.size() > kMaxTuple) fail("a tuple of " + std::to_string(items.size()) + " items");
    Value t{Value::kTuple};
    for (const Value &v : items) t.nodes += v.nodes;
    if (t.nodes > kMaxNodes) fail("a tuple nesting more than " + std::to_string(kMaxNodes) + " values");
    t.items = std::move(items);
    push(std::move(t));
  }
  void tuple_of(size_t n) {
    std::vector<Value> items(n);
    for (size_t k = n; k-- > 0;) items[k] = pop();
    tuple(std::move(items));
  }
  void set_items(std::vector<Value> items);
  void persistent_id();
  void reduce();
  Value rebuild_tensor(const std::vector<Value> &args);
  int64_t integer(const Value &v, const char *what) const {
    if (v.kind != Value::kInt) fail(std::string(what) + " is not an integer");
    return v.i;
  }
  std::vector<int64_t> int_tuple(const Value &v, const char *what) const;

  std::string name_;
  std::string_view p_;
  size_t pos_ = 0, at_ = 0;
  std::vector<Value> stack_;
  std::map<uint64_t, Value> memo_;
};

std::vector<Value> Interpreter::pop_to_mark() {
  size_t mark = stack_.size();
  while (mark > 0 && stack_[mark - 1].kind != Value::kMark) --mark;
  if (mark == 0) fail("no mark on the stack");
  std::vector<Value> items(std::make_move_iterator(stack_.begin() + long(mark)), std::make_move_iterator(stack_.end()));
  stack_.resize(mark - 1);
  return items;
}

void Interpreter::set_items(std::vector<Value> items) {
  if (items.size() % 2) fail("a dict item without a value");
  Value &dict = top();
  if (dict.kind != Value::kDict) fail("items set on something other than a dict");
  for (size_t k = 0; k < items.size(); k += 2) {
    if (items[k].kind != Value::kString) fail("a dict key that is not a string");
    if (items[k + 1].kind != Value::kTensor) fail("dict entry '" + items[k].s + "' is not a tensor");
    for (const auto &e : dict.dict)
      if (e.first == items[k].s) fail("dict key '" + items[k].s + "' appears twice");
    if (dict.dict.size() >= kMaxEntries) fail("a dict of more than " + std::to_string(kMaxEntries) + " entries");
    dict.dict.emplace_back(items[k].s, items[k + 1].tensor);
  }
}

// ("storage", torch.<T>Storage, key, location, numel): a storage record.
void Interpreter::persistent_id() {
  Value id = pop();
  if (id.kind != Value::kTuple || id.items.size() != 5 || id.items[0].kind != Value::kString ||
      id.items[0].s != "storage" || id.items[1].kind != Value::kGlobal || id.items[2].kind != Value::kString ||
      id.items[3].kind != Value::kString)
    fail("a persistent id that is not a tensor storage");
  auto type = storage_types().find(id.items[1].s);
  if (type == storage_types().end()) fail("storage type '" + id.items[1].s + "'");
  const std::string &key = id.items[2].s;
  if (key.empty() || key.size() > 9 || key.find_first_not_of("0123456789") != std::string::npos)
    fail("storage key '" + key + "' is not a record number");
  Value storage{Value::kStorage};
  storage.tensor.storage_key = key;
  storage.tensor.dtype = type->second;
  storage.tensor.storage_numel = integer(id.items[4], "a storage's size");
  if (storage.tensor.storage_numel < 0) fail("a storage of negative size");
  push(std::move(storage));
}

std::vector<int64_t> Interpreter::int_tuple(const Value &v, const char *what) const {
  if (v.kind != Value::kTuple) fail(std::string(what) + " is not a tuple");
  std::vector<int64_t> out;
  for (const Value &item : v.items) {
    out.push_back(integer(item, what));
    if (out.back() < 0) fail(std::string(what) + " holds a negative value");
  }
  return out;
}

// _rebuild_tensor_v2(storage, offset, sizes, strides, requires_grad, hooks):
// the view must lie inside its storage and be no larger than it.
Value Interpreter::rebuild_tensor(const std::vector<Value> &args) {
  if (args.size() != 6 || args[0].kind != Value::kStorage || args[4].kind != Value::kBool ||
      args[5].kind != Value::kHooks)
    fail("tensor arguments that are not (storage, offset, sizes, strides, requires_grad, hooks)");
  Value t{Value::kTensor};
  t.tensor = args[0].tensor;
  t.tensor.offset = integer(args[1], "a tensor's offset");
  t.tensor.sizes = int_tuple(args[2], "a tensor's sizes");
  t.tensor.strides = int_tuple(args[3], "a tensor's strides");
  if (t.tensor.offset < 0) fail("a negative tensor offset");
  if (t.tensor.sizes.size() != t.tensor.strides.size()) fail("a tensor with as many strides as sizes");
  int64_t numel = 1, last = t.tensor.offset;
  for (size_t d = 0; d < t.tensor.sizes.size(); ++d) {
    int64_t reach = 0;
    if (__builtin_mul_overflow(numel, t.tensor.sizes[d], &numel) ||
        (t.tensor.sizes[d] > 0 && (__builtin_mul_overflow(t.tensor.sizes[d] - 1, t.tensor.strides[d], &reach) ||
                                   __builtin_add_overflow(last, reach, &last))))
      fail("a tensor whose size overflows");
  }
  if (numel > t.tensor.storage_numel || (numel > 0 && last >= t.tensor.storage_numel))
    fail("a tensor of " + std::to_string(numel) + " elements reaching past its storage of " +
         std::to_string(t.tensor.storage_numel));
  return t;
}

void Interpreter::reduce() {
  Value args = pop(), callable = pop();
  if (callable.kind != Value::kGlobal || args.kind != Value::kTuple) fail("a call of something not a global");
  if (callable.s == "collections.OrderedDict" && args.items.empty()) {
    push(Value{Value::kHooks});
  } else if (callable.s == "torch._utils._rebuild_tensor_v2") {
    push(rebuild_tensor(args.items));
  } else if (callable.s == "torch.jit._pickle.restore_type_tag" && args.items.size() == 2 &&
             args.items[0].kind == Value::kDict && args.items[1].kind == Value::kString) {
    push(std::move(args.items[0]));  // libtorch's type tag: the dict itself
  } else {
    fail("a call of '" + callable.s + "' with other arguments than the format's");
  }
}

std::vector<std::pair<std::string, PickledTensor>> Interpreter::run() {
  for (;;) {
    at_ = pos_;
    const uint8_t op = uint8_t(take(1)[0]);
    switch (op) {
      case 0x80: if (const uint64_t v = little(1); v < 2 || v > 5) fail("pickle protocol " + std::to_string(v)); break;
      case 0x95: take(8); break;                                   // FRAME: a length hint
      case '}': push(Value{Value::kDict}); break;                  // EMPTY_DICT
      case ')': tuple({}); break;                                  // EMPTY_TUPLE
      case '(': push(Value{Value::kMark}); break;                  // MARK
      case 'N': push(Value{Value::kNone}); break;                  // NONE
      case 0x88: push(Value{Value::kBool, 1}); break;              // NEWTRUE
      case 0x89: push(Value{Value::kBool, 0}); break;              // NEWFALSE
      case 'K': push(Value{Value::kInt, int64_t(little(1))}); break;            // BININT1
      case 'M': push(Value{Value::kInt, int64_t(little(2))}); break;            // BININT2
      case 'J': push(Value{Value::kInt, int64_t(int32_t(little(4)))}); break;   // BININT
      case 0x8a: {                                                               // LONG1
        const size_t n = size_t(little(1));
        if (n > 8) fail("an integer of " + std::to_string(n) + " bytes");
        uint64_t v = n ? little(n) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);  // sign-extend
        push(Value{Value::kInt, int64_t(v)});
        break;
      }
      case 'X': string(size_t(little(4))); break;                  // BINUNICODE
      case 0x8c: string(size_t(little(1))); break;                 // SHORT_BINUNICODE
      case 'q': put(little(1)); break;                             // BINPUT
      case 'r': put(little(4)); break;                             // LONG_BINPUT
      case 0x94: put(memo_.size()); break;                         // MEMOIZE
      case 'h': get(little(1)); break;                             // BINGET
      case 'j': get(little(4)); break;                             // LONG_BINGET
      case 'c': {                                                  // GLOBAL "module\nname\n"
        std::string g;
        for (int lines = 0; lines < 2;) {
          const char ch = take(1)[0];
          if (ch == '\n') {
            g += lines++ ? "" : ".";
          } else if (g.size() < kMaxString) {
            g += ch;
          } else {
            fail("a global name longer than " + std::to_string(kMaxString));
          }
        }
        global(std::move(g));
        break;
      }
      case 0x93: {                                                 // STACK_GLOBAL
        Value n = pop(), m = pop();
        if (m.kind != Value::kString || n.kind != Value::kString) fail("a global named by non-strings");
        global(m.s + "." + n.s);
        break;
      }
      case 't': tuple(pop_to_mark()); break;                       // TUPLE
      case 0x85: tuple_of(1); break;                               // TUPLE1
      case 0x86: tuple_of(2); break;                               // TUPLE2
      case 0x87: tuple_of(3); break;                               // TUPLE3
      case 'Q': persistent_id(); break;                            // BINPERSID
      case 'R': reduce(); break;                                   // REDUCE
      case 's': {                                                  // SETITEM
        Value v = pop(), k = pop();
        set_items({std::move(k), std::move(v)});
        break;
      }
      case 'u': set_items(pop_to_mark()); break;                   // SETITEMS
      case '.': {                                                  // STOP
        Value root = pop();
        if (root.kind != Value::kDict) fail("the pickle does not hold a dict");
        if (!stack_.empty()) fail("values left on the stack");
        return root.dict;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("opcode ") + hex + " is not part of the format");
      }
    }
  }
}

}  // namespace

std::vector<std::pair<std::string, PickledTensor>> read_tensor_dict_pickle(const std::string &name,
                                                                          std::string_view pickle) {
  return Interpreter(name, pickle).run();
}

}  // namespace personaplex
