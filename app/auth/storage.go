package auth

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// sessionKeyPrefix keeps session keys apart from Asynq's and the caches'
// in a shared Redis database.
const sessionKeyPrefix = "session:"

// redisStorage is fiber.Storage over go-redis with a key prefix. Unlike the
// stock Redis storage, Reset deletes only session keys, never FLUSHDB.
type redisStorage struct {
	rdb redis.UniversalClient
}

func (s redisStorage) Get(key string) ([]byte, error) {
	if key == "" {
		return nil, nil
	}
	b, err := s.rdb.Get(context.Background(), sessionKeyPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

func (s redisStorage) Set(key string, val []byte, exp time.Duration) error {
	if key == "" || len(val) == 0 {
		return nil
	}
	return s.rdb.Set(context.Background(), sessionKeyPrefix+key, val, exp).Err()
}

func (s redisStorage) Delete(key string) error {
	if key == "" {
		return nil
	}
	return s.rdb.Del(context.Background(), sessionKeyPrefix+key).Err()
}

func (s redisStorage) Reset() error {
	ctx := context.Background()
	iter := s.rdb.Scan(ctx, 0, sessionKeyPrefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		if err := s.rdb.Del(ctx, iter.Val()).Err(); err != nil {
			return err
		}
	}
	return iter.Err()
}

func (s redisStorage) Close() error { return nil }
