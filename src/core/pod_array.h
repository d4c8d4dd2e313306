// A growable array of trivially copyable values whose memory grows with realloc instead of
// allocate-copy-free. For the identity graph's large per-record, per-identifier and per-link arrays
// (hundreds of MB at 10M records) that matters twice: glibc serves such blocks with mmap and grows them with
// mremap, so a growth neither copies nor holds the old and the new block at once, and the capacity beyond
// what was written is never touched, so it is not resident. A std::vector doubling its capacity kept up to
// twice the size resident (the copy writes the new block) and briefly three times during the copy.
// memory_bytes() counts the bytes written (the high-water mark of size()), which is what is resident.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/mman.h>
#include <type_traits>
#include <unistd.h>
#include <utility>

namespace cdp {

template <typename T>
class PodArray {
  static_assert(std::is_trivially_copyable<T>::value, "PodArray holds trivially copyable values only");

 public:
  PodArray() = default;
  PodArray(const PodArray& other) { *this = other; }
  PodArray(PodArray&& other) noexcept { swap(other); }
  PodArray& operator=(const PodArray& other) {
    if (this != &other) {
      clear();
      reserve(other.size_);
      if (other.size_) std::memcpy(data_, other.data_, other.size_ * sizeof(T));
      size_ = other.size_;
      touched_ = size_;
    }
    return *this;
  }
  PodArray& operator=(PodArray&& other) noexcept {
    if (this != &other) {
      release();
      swap(other);
    }
    return *this;
  }
  ~PodArray() { std::free(data_); }

  void swap(PodArray& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
    std::swap(touched_, other.touched_);
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t capacity() const { return capacity_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  T& back() { return data_[size_ - 1]; }

  // Room for n values; no memory is touched until values are written.
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    void* grown = std::realloc(data_, n * sizeof(T));
    if (!grown) throw std::bad_alloc();
    data_ = static_cast<T*>(grown);
    capacity_ = n;
  }
  void push_back(const T& value) {
    if (size_ == capacity_) reserve(capacity_ < 1024 ? 1024 : capacity_ * 2);
    data_[size_++] = value;
    if (size_ > touched_) touched_ = size_;
  }
  template <typename It>
  void append(It first, It last) {
    const std::size_t n = static_cast<std::size_t>(last - first);
    if (size_ + n > capacity_) reserve(size_ + n > capacity_ * 2 ? size_ + n : capacity_ * 2);
    for (std::size_t i = 0; i < n; ++i) data_[size_ + i] = first[i];
    size_ += n;
    if (size_ > touched_) touched_ = size_;
  }
  // n values, all equal to value.
  void assign(std::size_t n, const T& value) {
    size_ = 0;
    reserve(n);
    for (std::size_t i = 0; i < n; ++i) data_[i] = value;
    size_ = n;
    if (size_ > touched_) touched_ = size_;
  }
  void clear() { size_ = 0; }
  // Keeps the first n values (n <= size()); shrink_to_fit() then gives the rest back.
  void truncate(std::size_t n) {
    if (n < size_) size_ = n;
  }
  // Values [0, n) will not be read again: the whole pages among them go back to the kernel now (a pass
  // that consumes a large array front to back then holds only what it has still to read). The array keeps
  // its size; reading a discarded value gives garbage (zeros), writing one takes a fresh page.
  void discard_front(std::size_t n) {
    static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<std::uintptr_t>(data_);
    const std::uintptr_t first = (begin + page - 1) / page * page;  // the chunk's malloc header stays intact
    const std::uintptr_t last = (begin + (n < size_ ? n : size_) * sizeof(T)) / page * page;
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  }
  // Frees the memory.
  void release() {
    std::free(data_);
    data_ = nullptr;
    size_ = capacity_ = touched_ = 0;
  }
  // Gives the memory back down to size() values (realloc shrinks an mmap'd block in place).
  void shrink_to_fit() {
    if (size_ == capacity_) return;
    if (size_ == 0) {
      release();
      return;
    }
    void* shrunk = std::realloc(data_, size_ * sizeof(T));
    if (shrunk) data_ = static_cast<T*>(shrunk);
    capacity_ = touched_ = size_;
  }
  // Hands the block over as an array of U (trivially copyable, no stricter alignment than T) holding
  // `count` values that the caller has already written into it; this array is left empty.
  template <typename U>
  PodArray<U> reinterpret_as(std::size_t count) {
    static_assert(alignof(U) <= alignof(T), "reinterpret_as needs no stricter alignment");
    PodArray<U> out;
    out.adopt(data_, count, capacity_ * sizeof(T) / sizeof(U), touched_ * sizeof(T) / sizeof(U));
    data_ = nullptr;
    size_ = capacity_ = touched_ = 0;
    return out;
  }
  // Takes ownership of a malloc'd block (used by reinterpret_as).
  void adopt(void* data, std::size_t size, std::size_t capacity, std::size_t touched) {
    release();
    data_ = static_cast<T*>(data);
    size_ = size;
    capacity_ = capacity;
    touched_ = touched;
  }
  // Bytes written so far (resident), not the capacity reserved.
  std::size_t memory_bytes() const { return touched_ * sizeof(T); }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0, capacity_ = 0, touched_ = 0;
};

}  // namespace cdp
